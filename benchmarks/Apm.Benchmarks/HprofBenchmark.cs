using System.Diagnostics;
using System.Globalization;
using Apm.Hprof.Analysis;
using Apm.Testing;

namespace Apm.Benchmarks;

/// <summary>
/// Full heap triage vs a plain sequential read of the same dump vs VisualVM's heap library computing retained
/// sizes, on dumps made by the CancelTimerLeak fixture. Args: "100mb" (default), "1gb", or statements:bufferBytes
/// pairs; add "--no-visualvm" to skip the VisualVM run (its time grows with the square of the Finalizer chain, so
/// it is skipped by default above 60,000 statements); "--dumps=DIR" keeps the dumps in DIR and reuses one that is
/// already there (for repeated runs: making the 1 GB dump takes minutes). Prints times, peak memory (private and file-backed pages
/// apart, see <see cref="MemorySampler"/>) and ratios. "--cli=A.dll,B" also times whole <c>apm triage</c> processes
/// of those builds (e.g. a plain Release build against the NativeAOT <c>apm-triage</c> executable: a path that does not
/// end in .dll is started directly, with the same arguments), alternating, three runs each: what a user waits for,
/// runtime start and JIT included.
/// </summary>
public static class HprofBenchmark
{
    private const string VisualVmModules = "/usr/share/visualvm/visualvm/modules/";

    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        bool visualVm = !args.Contains("--no-visualvm");
        var sizes = args.Where(a => !a.StartsWith("--", StringComparison.Ordinal)).Select(a => a switch
        {
            "100mb" => (Statements: 20_000, Buffer: 4096),
            "1gb" => (Statements: 200_000, Buffer: 4096),
            _ => (Statements: int.Parse(a.Split(':')[0], CultureInfo.InvariantCulture), Buffer: int.Parse(a.Split(':')[1], CultureInfo.InvariantCulture)),
        }).ToList();
        if (sizes.Count == 0) sizes.Add((20_000, 4096));
        var keep = args.FirstOrDefault(a => a.StartsWith("--dumps=", StringComparison.Ordinal))?["--dumps=".Length..];
        var clis = args.FirstOrDefault(a => a.StartsWith("--cli=", StringComparison.Ordinal))?["--cli=".Length..].Split(',', StringSplitOptions.RemoveEmptyEntries) ?? [];
        var dir = keep ?? Directory.CreateTempSubdirectory("apm-hprof-bench-").FullName;
        if (keep != null) Directory.CreateDirectory(keep);
        try
        {
            foreach (var (statements, buffer) in sizes) RunOne(dir, statements, buffer, visualVm && statements <= 60_000, clis);
        }
        finally
        {
            if (keep == null) Directory.Delete(dir, true);
        }

        return 0;
    }

    private static void RunOne(string dir, int statements, int buffer, bool runVisualVm, string[] clis)
    {
        var dump = Path.Combine(dir, FormattableString.Invariant($"ct-{statements}-{buffer}.hprof"));
        if (!File.Exists(dump))
        {
            // Written under another name first, so that an interrupted run leaves no partial dump to reuse.
            var partial = dump + ".partial";
            File.Delete(partial);
            using (var jvm = JavaFixture.Start("CancelTimerLeak", ["-Xmx3g"], [statements.ToString(CultureInfo.InvariantCulture), buffer.ToString(CultureInfo.InvariantCulture)]))
            {
                jvm.WaitForOutputAsync("READY", TimeSpan.FromMinutes(10)).GetAwaiter().GetResult();
                jvm.Jcmd("GC.heap_dump", partial);
            }

            File.Move(partial, dump);
        }

        long size = new FileInfo(dump).Length;
        Console.WriteLine(FormattableString.Invariant($"dump: {statements} statements, {size / 1e6:F1} MB"));

        // The plain read: best of three sequential reads from the page cache (the dump was just written).
        var chunk = new byte[1 << 20];
        long sum = 0;
        var sw = new Stopwatch();
        var plainReadBest = TimeSpan.MaxValue;
        for (int i = 0; i < 3; i++)
        {
            sw.Restart();
            using (var fs = new FileStream(dump, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan))
            {
                int n;
                while ((n = fs.Read(chunk, 0, chunk.Length)) > 0) sum += chunk[n - 1];
            }

            if (sw.Elapsed < plainReadBest) plainReadBest = sw.Elapsed;
        }

        var plainRead = plainReadBest;
        Console.WriteLine(FormattableString.Invariant($"plain read: {plainRead.TotalSeconds:F3} s (checksum {sum % 7})"));

        // Two triages in this process: the first pays for JIT compilation (what `apm triage` pays once per run),
        // the second shows the steady state. Memory is sampled during the first.
        TimeSpan triage = default;
        for (int run = 1; run <= 2; run++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            using var sampler = MemorySampler.Start();
            long jitMethods = System.Runtime.JitInfo.GetCompiledMethodCount();
            var jitTime = System.Runtime.JitInfo.GetCompilationTime();
            sw.Restart();
            var result = HeapTriage.Run(dump);
            var elapsed = sw.Elapsed;
            jitMethods = System.Runtime.JitInfo.GetCompiledMethodCount() - jitMethods;
            jitTime = System.Runtime.JitInfo.GetCompilationTime() - jitTime;
            var peak = sampler.Stop();
            if (run == 1) triage = elapsed;
            Console.WriteLine(FormattableString.Invariant($"triage run {run}{(run == 1 ? " (cold JIT)" : " (warm JIT)")}: {elapsed.TotalSeconds:F3} s, ratio to plain read {elapsed / plainRead:F1}x (aim: <= 4), {result.Findings.Count} findings"));
            Console.WriteLine(FormattableString.Invariant($"  JIT during the triage: {jitMethods} methods compiled in {jitTime.TotalMilliseconds:F0} ms (all threads)"));
            Console.WriteLine("  steps: " + string.Join(", ", result.Timings.Select(t => FormattableString.Invariant($"{t.Step} {t.Elapsed.TotalMilliseconds:F0} ms"))));
            Console.WriteLine(FormattableString.Invariant($"  peak memory: private (RssAnon) {peak.AnonBytes / 1e6:F0} MB = {(double)peak.AnonBytes / size:F2} x dump (aim: < 1); mapped file pages (RssFile) {peak.FileBytes / 1e6:F0} MB; before the triage {sampler.Before.AnonBytes / 1e6:F0} MB private, {sampler.Before.FileBytes / 1e6:F0} MB file; process peak RSS (VmHWM, both) {peak.HwmBytes / 1e6:F0} MB = {(double)peak.HwmBytes / size:F2} x dump; managed heap {peak.ManagedBytes / 1e6:F0} MB"));
        }

        TimeCliProcesses(dump, plainRead, clis);
        if (!runVisualVm)
        {
            Console.WriteLine("VisualVM: skipped for this size");
            return;
        }

        var jars = new[] { "org-graalvm-visualvm-lib-jfluid-heap.jar", "org-graalvm-visualvm-lib-profiler-utilities.jar" }.Select(j => VisualVmModules + j).ToArray();
        var oracleSource = FindOracleSource();
        if (!jars.All(File.Exists) || oracleSource == null)
        {
            Console.WriteLine("VisualVM: not installed (apt-get install -y visualvm) or oracle source not found; skipped");
            return;
        }

        var cp = string.Join(':', jars);
        var classes = Path.Combine(dir, "oracle");
        Directory.CreateDirectory(classes);
        JavaFixture.RunTool("javac", ["-cp", cp, "-d", classes, oracleSource]);
        sw.Restart();
        var output = JavaFixture.RunTool("java", ["-Xmx6g", "-XX:+UseSerialGC", "-cp", cp + ":" + classes, "HprofOracle", dump, "10"], TimeSpan.FromHours(2));
        var visualVm = sw.Elapsed;
        Console.WriteLine(FormattableString.Invariant($"VisualVM:   {visualVm.TotalSeconds:F2} s ({output.Split('\n').Length} lines)"));
        Console.WriteLine(FormattableString.Invariant($"ratio VisualVM / triage: {visualVm / triage:F1}x (aim: >= 3)"));
    }

    /// <summary>Whole <c>apm triage</c> processes of each build, alternating (so machine noise hits them alike), three rounds.</summary>
    private static void TimeCliProcesses(string dump, TimeSpan plainRead, string[] clis)
    {
        if (clis.Length == 0) return;
        var output = Path.Combine(Path.GetTempPath(), $"apm-hprof-cli-{Environment.ProcessId}");
        var times = clis.ToDictionary(c => c, _ => new List<TimeSpan>());
        try
        {
            for (var round = 0; round < 3; round++)
            {
                foreach (var cli in clis)
                {
                    File.Delete(output + ".json");
                    var sw = Stopwatch.StartNew();
                    // A .dll is the apm CLI run by dotnet; anything else is an executable, e.g. the native apm-triage.
                    string[] triageArgs = ["triage", dump, "--json", output + ".json", "--html", output + ".html"];
                    var text = cli.EndsWith(".dll", StringComparison.Ordinal)
                        ? JavaFixture.RunTool("dotnet", [cli, .. triageArgs], TimeSpan.FromMinutes(10))
                        : JavaFixture.RunTool(cli, triageArgs, TimeSpan.FromMinutes(10));
                    times[cli].Add(sw.Elapsed);
                    if (!File.Exists(output + ".json")) throw new InvalidOperationException($"apm triage ({cli}) wrote no report: {text}");
                }
            }
        }
        finally
        {
            File.Delete(output + ".json");
            File.Delete(output + ".html");
        }

        foreach (var (cli, list) in times)
        {
            var best = list.Min();
            Console.WriteLine(FormattableString.Invariant(
                $"apm triage process ({cli}): {string.Join(", ", list.Select(t => t.TotalSeconds.ToString("F3", CultureInfo.InvariantCulture)))} s; best {best / plainRead:F1}x the plain read (aim: <= 4)"));
        }
    }

    private static string? FindOracleSource()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
            {
                var p = Path.Combine(d.FullName, "tests", "Apm.Hprof.Tests", "oracle", "HprofOracle.java");
                if (File.Exists(p)) return p;
            }
        }

        return null;
    }
}
