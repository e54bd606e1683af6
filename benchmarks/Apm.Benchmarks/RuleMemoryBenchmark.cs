using System.Diagnostics;
using System.Globalization;
using Apm.Aggregator.Alerting;
using Apm.FleetSimulator;
using Apm.Protocol.V1;

namespace Apm.Benchmarks;

/// <summary>
/// The memory the leak rules keep per JVM. Feeds the rule engine an hour of simulated samples (every 5 s) for N JVMs
/// (--jvms, default 1000) with the default windows, then prints the managed bytes the engine holds per kept heap
/// sample, as a ratio to the bare fields of a sample (seven 8-byte numbers, 56 bytes), and projects the total for
/// 5,000 JVMs. The engine also holds finalizer readings and histograms; they are included in the total.
/// </summary>
public static class RuleMemoryBenchmark
{
    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var i = Array.IndexOf(args, "--jvms");
        var jvms = i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : 1000;
        var start = DateTimeOffset.UtcNow.AddHours(-1);
        var fleet = new Fleet(jvms, 5, 0, 20, start, seed: 7);
        var engine = new RuleEngine(new RuleSet());
        var buffer = new List<CollectorMessage>(8);
        var before = Live();
        var clock = Stopwatch.StartNew();
        var step = TimeSpan.FromSeconds(5);
        long messages = 0;
        // An hour, every JVM sampled every 5 s.
        for (var t = start; t < start.AddHours(1); t += step)
        {
            for (var j = 0; j < jvms; j++)
            {
                buffer.Clear();
                fleet.StepNext(t, buffer);
                foreach (var m in buffer)
                {
                    engine.Observe(m, 0);
                    messages++;
                }
            }
        }

        var elapsed = clock.Elapsed;
        var after = Live();
        long heap = 0, finalizer = 0, histograms = 0;
        foreach (var jvm in fleet.Jvms)
        {
            var kept = engine.Kept(jvm.Identity.JvmId);
            heap += kept.Heap;
            finalizer += kept.Finalizer;
            histograms += kept.Histograms;
        }

        GC.KeepAlive(engine);
        var bytes = after - before;
        var perSample = (double)bytes / Math.Max(1, heap);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"rules: {jvms:N0} JVMs, {messages:N0} messages in {elapsed.TotalSeconds:F1} s ({messages / elapsed.TotalSeconds:N0}/s, evaluations included)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"kept: {heap:N0} heap samples, {finalizer:N0} finalizer readings, {histograms:N0} histograms; engine holds {bytes / 1048576.0:F1} MB"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"per kept heap sample (all kept state divided by heap samples): {perSample:F0} bytes = {perSample / 56:F2}x the bare 56-byte fields; for 5,000 JVMs: {perSample * heap / jvms * 5000 / 1048576.0:F0} MB"));
        return 0;
    }

    private static long Live()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        return GC.GetTotalMemory(false);
    }
}
