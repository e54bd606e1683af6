using System.Diagnostics;
using System.Globalization;
using Apm.Jvm.PerfData;
using Apm.Testing;

namespace Apm.Benchmarks;

/// <summary>
/// What one collector sample of a JVM costs, against running `jstat -gc` for the same numbers, and what
/// keeping 20 JVMs mapped and sampled costs in memory. Both sides run in this process, side by side.
/// CPU time: ours is this process's TotalProcessorTime (every thread, so GC and JIT are included);
/// jstat's is the utime+stime of reaped children, from fields 16 and 17 (cutime, cstime) of /proc/self/stat
/// (what times(2) reports, 10 ms resolution: jstat costs hundreds of ms, so that is enough).
/// Arguments: --samples N (default 20000), --jstat N (default 10), --jvms N (default 20).
/// </summary>
internal static class CollectorCostBenchmark
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(3);

    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var samples = Arg(args, "--samples", 20_000);
        var jstatRuns = Arg(args, "--jstat", 10);
        var jvmCount = Arg(args, "--jvms", 20);

        var perSample = SampleCost(samples, jstatRuns);
        MemoryOfManyJvms(jvmCount, perSample);
        return 0;
    }

    private static double SampleCost(int samples, int jstatRuns)
    {
        using var jvm = StartJvm();
        using var file = PerfDataFile.Open(jvm.PerfDataPath);
        // Warm-up until tiered compilation settles, then the best of three runs (the machine may be shared).
        for (var i = 0; i < 50_000; i++) HotSpotCounters.From(file.Read());
        var self = Process.GetCurrentProcess();
        double ourCpuUs = double.MaxValue, ourWallUs = double.MaxValue, ourBytes = 0;
        long sink = 0;
        var wall = new Stopwatch();
        for (var run = 0; run < 3; run++)
        {
            GC.Collect();
            var allocated = GC.GetAllocatedBytesForCurrentThread();
            var cpu = Cpu(self);
            wall.Restart();
            for (var i = 0; i < samples; i++) sink += HotSpotCounters.From(file.Read()).Collectors.Count;
            wall.Stop();
            ourCpuUs = Math.Min(ourCpuUs, (Cpu(self) - cpu).TotalMicroseconds / samples);
            ourWallUs = Math.Min(ourWallUs, wall.Elapsed.TotalMicroseconds / samples);
            ourBytes = (GC.GetAllocatedBytesForCurrentThread() - allocated) / (double)samples;
        }

        var rawCpu = Cpu(self);
        for (var i = 0; i < samples; i++) sink += file.ReadRawBytes().Length;
        var rawCpuUs = (Cpu(self) - rawCpu).TotalMicroseconds / samples;

        var pid = jvm.Pid.ToString(CultureInfo.InvariantCulture);
        JavaFixture.RunTool("jstat", ["-gc", pid]); // warm the page cache for the JDK's files
        var children = ChildrenCpu();
        wall.Restart();
        var output = "";
        for (var i = 0; i < jstatRuns; i++) output = JavaFixture.RunTool("jstat", ["-gc", pid]);
        wall.Stop();
        var jstatCpuMs = (ChildrenCpu() - children).TotalMilliseconds / jstatRuns;
        var jstatWallMs = wall.Elapsed.TotalMilliseconds / jstatRuns;
        if (!output.Contains("EU", StringComparison.Ordinal)) throw new InvalidOperationException("jstat printed no -gc header: " + output);

        Console.WriteLine(Invariant($"collector sample (Open once, then Read + HotSpotCounters.From): {ourCpuUs:F1} µs CPU, {ourWallUs:F1} µs wall, {ourBytes / 1024:F1} KiB allocated per sample (best of 3 runs of {samples}; checksum {sink})"));
        Console.WriteLine(Invariant($"plain copy of the whole mapped file (what a naive reader allocates and copies): {rawCpuUs:F1} µs CPU per copy"));
        Console.WriteLine(Invariant($"jstat -gc: {jstatCpuMs:F0} ms CPU (children utime+stime from /proc/self/stat), {jstatWallMs:F0} ms wall per run ({jstatRuns} runs)"));
        Console.WriteLine(Invariant($"collector sample: {ourCpuUs:F1} µs CPU; jstat -gc: {jstatCpuMs:F0} ms CPU; ratio {jstatCpuMs * 1000 / ourCpuUs:F0}x"));
        return ourCpuUs;
    }

    private static void MemoryOfManyJvms(int count, double perSampleUs)
    {
        var jvms = new List<JavaFixture>();
        var files = new List<PerfDataFile>();
        try
        {
            for (var i = 0; i < count; i++) jvms.Add(JavaFixture.Start("PerfDataSleeper", ["-Xmx32m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]));
            foreach (var jvm in jvms)
            {
                jvm.WaitForOutputAsync("READY", StartTimeout).GetAwaiter().GetResult();
                jvm.WaitForPerfDataAsync(StartTimeout).GetAwaiter().GetResult();
            }

            var self = Process.GetCurrentProcess();
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            self.Refresh();
            var workingSet = self.WorkingSet64;
            var heap = GC.GetTotalMemory(forceFullCollection: true);

            var latest = new JvmCounters[count];
            foreach (var jvm in jvms) files.Add(PerfDataFile.Open(jvm.PerfDataPath));
            const int rounds = 200;
            var cpu = Cpu(self);
            for (var r = 0; r < rounds; r++)
            {
                for (var i = 0; i < files.Count; i++) latest[i] = HotSpotCounters.From(files[i].Read());
            }

            var roundCpuUs = (Cpu(self) - cpu).TotalMicroseconds / rounds;
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            self.Refresh();
            var workingSetDelta = self.WorkingSet64 - workingSet;
            var heapDelta = GC.GetTotalMemory(forceFullCollection: true) - heap;
            GC.KeepAlive(latest);

            var (mappings, rssKiB) = MappedPerfData();
            Console.WriteLine(Invariant($"{count} JVMs mapped and sampled ({rounds} rounds, latest counters kept): GC heap +{heapDelta / 1024.0:F0} KiB ({heapDelta / 1024.0 / count:F1} KiB per JVM); {mappings} hsperfdata mappings with {rssKiB} KiB resident ({rssKiB / (double)count:F0} KiB per JVM, shared with the JVMs); working set {workingSetDelta / 1024.0:+0;-0} KiB (noisy: includes GC trimming)"));
            var discovery = new JvmDiscovery();
            var found = discovery.Discover().Count;
            cpu = Cpu(self);
            const int discoveries = 50;
            for (var i = 0; i < discoveries; i++) found = discovery.Discover().Count;
            var discoverMs = (Cpu(self) - cpu).TotalMilliseconds / discoveries;
            Console.WriteLine(Invariant($"JvmDiscovery.Discover() over /tmp and /proc ({found} JVMs, {Directory.GetDirectories("/proc").Length} /proc entries): {discoverMs:F2} ms CPU per call"));
            Console.WriteLine(Invariant($"one round over {count} JVMs: {roundCpuUs:F0} µs CPU ({roundCpuUs / count:F1} µs per JVM; single-JVM loop measured {perSampleUs:F1} µs)"));
        }
        finally
        {
            foreach (var f in files) f.Dispose();
            foreach (var jvm in jvms) jvm.Dispose();
        }
    }

    /// <summary>Number of our mappings of hsperfdata files and their resident KiB, from /proc/self/smaps.</summary>
    private static (int Mappings, long RssKiB) MappedPerfData()
    {
        int mappings = 0;
        long rss = 0;
        var inPerfData = false;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            if (IsMappingHeader(line))
            {
                inPerfData = line.Contains("/hsperfdata_", StringComparison.Ordinal);
                if (inPerfData) mappings++;
            }
            else if (inPerfData && line.StartsWith("Rss:", StringComparison.Ordinal))
            {
                rss += long.Parse(line.AsSpan(4).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture);
            }
        }

        return (mappings, rss);
    }

    // A mapping header starts with "start-end perms": hex digits, a dash, hex digits, a space.
    private static bool IsMappingHeader(string line)
    {
        var dash = line.IndexOf('-', StringComparison.Ordinal);
        var space = line.IndexOf(' ', StringComparison.Ordinal);
        return dash > 0 && space > dash && !line.AsSpan(0, dash).ContainsAnyExcept("0123456789abcdef");
    }

    private static JavaFixture StartJvm()
    {
        var jvm = JavaFixture.Start("PerfDataSleeper", ["-Xmx64m"]);
        jvm.WaitForOutputAsync("READY", StartTimeout).GetAwaiter().GetResult();
        jvm.WaitForPerfDataAsync(StartTimeout).GetAwaiter().GetResult();
        return jvm;
    }

    private static TimeSpan Cpu(Process self)
    {
        self.Refresh();
        return self.TotalProcessorTime;
    }

    /// <summary>utime+stime of every child this process has waited for (cutime + cstime, in clock ticks of 10 ms).</summary>
    private static TimeSpan ChildrenCpu()
    {
        var stat = File.ReadAllText("/proc/self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // fields[0] is field 3 (state): cutime is field 16, cstime field 17.
        var ticks = long.Parse(fields[13], CultureInfo.InvariantCulture) + long.Parse(fields[14], CultureInfo.InvariantCulture);
        return TimeSpan.FromMilliseconds(ticks * 10);
    }

    private static int Arg(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
