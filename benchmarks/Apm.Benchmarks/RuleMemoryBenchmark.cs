using System.Diagnostics;
using System.Globalization;
using Apm.Aggregator.Alerting;
using Apm.FleetSimulator;
using Apm.Protocol.V1;

namespace Apm.Benchmarks;

/// <summary>
/// What the leak rules cost per JVM. Feeds the rule engine an hour of simulated samples (every 5 s) for N JVMs
/// (--jvms, default 1000) with the default windows, then prints:
/// <list type="bullet">
/// <item>CPU per message: this process's CPU time (every thread, so GC and JIT count; not wall time, the machine is
/// shared) for the run, minus a baseline run beside it that generates the same messages (same seed) without the
/// engine; and the evaluations per second of that CPU time;</item>
/// <item>the managed bytes the engine holds per kept heap sample, as a ratio to the bare fields of a sample (seven
/// 8-byte numbers, 56 bytes), projected for 5,000 JVMs. The engine also holds finalizer readings and histograms;
/// they are included in the total.</item>
/// </list>
/// </summary>
public static class RuleMemoryBenchmark
{
    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var i = Array.IndexOf(args, "--jvms");
        var jvms = i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : 1000;
        var start = DateTimeOffset.UtcNow.AddHours(-1);

        // Baseline: the simulator alone, so its CPU and allocations are not charged to the rules.
        var baseline = Feed(new Fleet(jvms, 5, 0, 20, start, seed: 7), start, null);

        var fleet = new Fleet(jvms, 5, 0, 20, start, seed: 7);
        var before = Live();
        var engine = new RuleEngine(new RuleSet());
        var run = Feed(fleet, start, engine);
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
        var messages = run.Messages;
        var rulesCpu = run.Cpu - baseline.Cpu;
        var evaluations = engine.Evaluations;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"rules: {jvms:N0} JVMs, {messages:N0} messages in {run.Wall.TotalSeconds:F1} s wall ({messages / run.Wall.TotalSeconds:N0}/s, evaluations and message generation included)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"cpu: {run.Cpu.TotalSeconds:F1} s with the engine, {baseline.Cpu.TotalSeconds:F1} s generating the same messages alone: rules {rulesCpu.TotalSeconds:F1} s = {rulesCpu.TotalMicroseconds / messages:F1} µs per message ({messages / rulesCpu.TotalSeconds:N0} messages/s of CPU)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"evaluations: {evaluations:N0} ({(double)evaluations / messages:F2} per message) = {evaluations / rulesCpu.TotalSeconds:N0} per CPU second, {rulesCpu.TotalMicroseconds / evaluations:F1} µs each; allocated {(double)(run.Allocated - baseline.Allocated) / messages:N0} bytes per message"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"rule runs: {engine.RuleRuns:N0} computed, {engine.ReusedResults:N0} reused (the rule's observations had not changed)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"kept: {heap:N0} heap samples, {finalizer:N0} finalizer readings, {histograms:N0} histograms; engine holds {bytes / 1048576.0:F1} MB"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"per kept heap sample (all kept state divided by heap samples): {perSample:F0} bytes = {perSample / 56:F2}x the bare 56-byte fields; for 5,000 JVMs: {perSample * heap / jvms * 5000 / 1048576.0:F0} MB"));
        return 0;
    }

    /// <summary>An hour, every JVM sampled every 5 s; each message goes to <paramref name="engine"/> when there is one.</summary>
    private static (long Messages, TimeSpan Cpu, TimeSpan Wall, long Allocated) Feed(Fleet fleet, DateTimeOffset start, RuleEngine? engine)
    {
        using var self = Process.GetCurrentProcess();
        var buffer = new List<CollectorMessage>(8);
        var step = TimeSpan.FromSeconds(5);
        long messages = 0;
        self.Refresh();
        var cpu0 = self.TotalProcessorTime;
        var allocated0 = GC.GetTotalAllocatedBytes(precise: true);
        var clock = Stopwatch.StartNew();
        for (var t = start; t < start.AddHours(1); t += step)
        {
            for (var j = 0; j < fleet.Count; j++)
            {
                buffer.Clear();
                fleet.StepNext(t, buffer);
                foreach (var m in buffer)
                {
                    engine?.Observe(m, 0);
                    messages++;
                }
            }
        }

        var wall = clock.Elapsed;
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated0;
        self.Refresh();
        return (messages, self.TotalProcessorTime - cpu0, wall, allocated);
    }

    private static long Live()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        return GC.GetTotalMemory(false);
    }
}
