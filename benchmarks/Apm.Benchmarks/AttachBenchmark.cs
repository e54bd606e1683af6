using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Apm.Jvm.Attach;
using Apm.Testing;

namespace Apm.Benchmarks;

/// <summary>
/// The attach client's cost against the JDK's own tool, measured side by side on one real JVM (the
/// SlowFinalizer fixture): wall and CPU time of one GC.finalizer_info through HotSpotAttachClient versus
/// one `jcmd &lt;pid&gt; GC.finalizer_info` process; then the safepoints each sampling kind adds per minute,
/// read from the JVM's own sun.rt.safepoints counter, against a phase with no sampling.
/// Arguments: [--iterations N] (client requests, default 200) [--jcmd-iterations N] (default 10)
/// [--phase-seconds N] (length of each safepoint phase, default 30).
/// </summary>
public static partial class AttachBenchmark
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Runs the benchmark and prints its figures and ratios; returns the process exit code.</summary>
    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var iterations = IntArg(args, "--iterations", 200);
        var jcmdIterations = IntArg(args, "--jcmd-iterations", 10);
        var phaseSeconds = IntArg(args, "--phase-seconds", 30);
        return RunAsync(iterations, jcmdIterations, phaseSeconds).GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(int iterations, int jcmdIterations, int phaseSeconds)
    {
        using var jvm = JavaFixture.Start("SlowFinalizer", ["-Xmx256m"]);
        await jvm.WaitForOutputAsync("READY", TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        var client = new HotSpotAttachClient();
        var pid = jvm.Pid;

        // Warm-up: starts the JVM's attach listener and JIT-compiles our path; neither side pays that below.
        for (var i = 0; i < 10; i++) await client.JcmdAsync(pid, "GC.finalizer_info", RequestTimeout, default).ConfigureAwait(false);
        jvm.Jcmd("GC.finalizer_info");

        Console.WriteLine($"AttachBenchmark: target JVM pid {pid} (SlowFinalizer, -Xmx256m), {Environment.ProcessorCount} cores");

        // Ours: wall per request and this process's CPU. (The target JVM's CPU is left out: its own
        // workload dominates it, and both ways run the same command inside the JVM.)
        var ownCpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        long pending = 0;
        for (var i = 0; i < iterations; i++)
        {
            var info = FinalizerInfoParser.Parse(await client.JcmdAsync(pid, "GC.finalizer_info", RequestTimeout, default).ConfigureAwait(false));
            pending = info.PendingTotal;
        }

        var oursWall = sw.Elapsed / iterations;
        var oursCpu = (Process.GetCurrentProcess().TotalProcessorTime - ownCpu0) / iterations;

        // jcmd: wall per process and the CPU of the jcmd processes (reaped children).
        var childCpu0 = ChildrenCpu();
        sw.Restart();
        for (var i = 0; i < jcmdIterations; i++) FinalizerInfoParser.Parse(jvm.Jcmd("GC.finalizer_info"));
        var jcmdWall = sw.Elapsed / jcmdIterations;
        var jcmdCpu = (ChildrenCpu() - childCpu0) / jcmdIterations;

        Console.WriteLine($"one GC.finalizer_info (queue ~{pending:N0} pending):");
        Console.WriteLine($"  HotSpotAttachClient: wall {Ms(oursWall)}, collector CPU {Ms(oursCpu)}   ({iterations} requests)");
        Console.WriteLine($"  jcmd process:        wall {Ms(jcmdWall)}, jcmd CPU {Ms(jcmdCpu)}   ({jcmdIterations} runs)");
        Console.WriteLine($"  ratio jcmd/ours: wall {Ratio(jcmdWall, oursWall)}, caller CPU {Ratio(jcmdCpu, oursCpu)}");

        // Safepoints: one phase without sampling, then one per sampling kind, on a fixed schedule.
        var phase = TimeSpan.FromSeconds(phaseSeconds);
        var baseline = await SafepointsDuringAsync(jvm, phase, null, TimeSpan.Zero).ConfigureAwait(false);
        var finalizer = await SafepointsDuringAsync(jvm, phase,
            () => client.JcmdAsync(pid, "GC.finalizer_info", RequestTimeout, default), TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        var histogram = await SafepointsDuringAsync(jvm, phase,
            () => client.JcmdAsync(pid, "GC.class_histogram", RequestTimeout, default), TimeSpan.FromSeconds(5)).ConfigureAwait(false);

        var perMinute = 60.0 / phaseSeconds;
        var finalizerAdded = (finalizer.Safepoints - baseline.Safepoints) * perMinute;
        var histogramAdded = (histogram.Safepoints - baseline.Safepoints) * perMinute;
        Console.WriteLine($"safepoints per minute (sun.rt.safepoints, {phaseSeconds} s phases):");
        Console.WriteLine($"  no sampling:                        {baseline.Safepoints * perMinute,7:0.0}");
        Console.WriteLine($"  GC.finalizer_info every 1 s:        {finalizer.Safepoints * perMinute,7:0.0}  added {finalizerAdded,6:0.0}  per sample {(finalizer.Safepoints - baseline.Safepoints) / (double)Math.Max(1, finalizer.Samples),5:0.00}");
        Console.WriteLine($"  GC.class_histogram every 5 s:       {histogram.Safepoints * perMinute,7:0.0}  added {histogramAdded,6:0.0}  per sample {(histogram.Safepoints - baseline.Safepoints) / (double)Math.Max(1, histogram.Samples),5:0.00}");
        Console.WriteLine($"  ratio histogram/finalizer_info safepoints per sample: {RatioPerSample(histogram, finalizer, baseline)}");
        return 0;
    }

    private static async Task<(long Safepoints, int Samples)> SafepointsDuringAsync(JavaFixture jvm, TimeSpan phase, Func<Task<string>>? sample, TimeSpan every)
    {
        var before = Safepoints(jvm);
        var sw = Stopwatch.StartNew();
        var samples = 0;
        while (sw.Elapsed < phase)
        {
            if (sample != null)
            {
                await sample().ConfigureAwait(false);
                samples++;
                // Fixed schedule: sample k starts at k * every; never sleep past the phase's end.
                var elapsed = sw.Elapsed;
                var next = every * samples - elapsed;
                var remaining = phase - elapsed;
                var delay = next < remaining ? next : remaining;
                if (delay > TimeSpan.Zero) await Task.Delay(delay).ConfigureAwait(false);
            }
            else
            {
                await Task.Delay(phase).ConfigureAwait(false);
            }
        }

        return (Safepoints(jvm) - before, samples);
    }

    /// <summary>The JVM's own count of safepoints since start; the reading (PerfCounter.print) takes none.</summary>
    private static long Safepoints(JavaFixture jvm)
    {
        foreach (var line in jvm.Jcmd("PerfCounter.print").Split('\n'))
        {
            if (line.StartsWith("sun.rt.safepoints=", StringComparison.Ordinal))
                return long.Parse(line.AsSpan("sun.rt.safepoints=".Length).Trim(), CultureInfo.InvariantCulture);
        }

        throw new InvalidOperationException("no sun.rt.safepoints counter");
    }

    private static TimeSpan ChildrenCpu()
    {
        var usage = new RUsage();
        if (GetRUsage(-1 /* RUSAGE_CHILDREN */, ref usage) != 0) throw new InvalidOperationException("getrusage failed");
        return TimeSpan.FromMicroseconds(usage.UserSec * 1_000_000 + usage.UserUsec + usage.SystemSec * 1_000_000 + usage.SystemUsec);
    }

    [LibraryImport("libc", EntryPoint = "getrusage")]
    private static partial int GetRUsage(int who, ref RUsage usage);

    /// <summary>struct rusage on 64-bit Linux: two timevals then fourteen longs.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct RUsage
    {
        public long UserSec;
        public long UserUsec;
        public long SystemSec;
        public long SystemUsec;
        public long MaxRss, IxRss, IdRss, IsRss, MinFlt, MajFlt, NSwap, InBlock, OuBlock, MsgSnd, MsgRcv, NSignals, NVcsw, NIvcsw;
    }

    private static string Ms(TimeSpan t) => t.TotalMilliseconds.ToString("0.000", CultureInfo.InvariantCulture) + " ms";

    private static string Ratio(TimeSpan a, TimeSpan b) =>
        b > TimeSpan.Zero ? (a / b).ToString("0.0", CultureInfo.InvariantCulture) + "x" : "n/a (baseline below clock resolution)";

    private static string RatioPerSample((long Safepoints, int Samples) a, (long Safepoints, int Samples) b, (long Safepoints, int Samples) baseline)
    {
        var perA = (a.Safepoints - baseline.Safepoints) / (double)Math.Max(1, a.Samples);
        var perB = (b.Safepoints - baseline.Safepoints) / (double)Math.Max(1, b.Samples);
        return perB > 0 ? (perA / perB).ToString("0.0", CultureInfo.InvariantCulture) + "x" : "finalizer_info adds none measurable";
    }

    private static int IntArg(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }
}
