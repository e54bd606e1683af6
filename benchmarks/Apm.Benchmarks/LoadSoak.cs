using System.Diagnostics;
using System.Globalization;
using Apm.Aggregator.Alerting;
using Apm.Alerts.Rules;
using Apm.FleetSimulator;
using Apm.Testing;

namespace Apm.Benchmarks;

/// <summary>
/// A steady-rate soak of the same in-process pipeline as <see cref="LoadBenchmark"/> (mock Kafka, real influxd, one or
/// more aggregators with the rules on, the collector's publisher fed by the simulator). Every 30 s it records the
/// consumer lag and this process's live managed heap (after a full collection) and working set; at the end it prints
/// the heap's trend over the second half (least squares, MB per hour) and the largest lag. The aggregator and the
/// publisher share this process, so the heap figure covers both; the dashboard is not part of it.
/// Arguments: [--minutes N] (default 60) [--rate N] samples/s (default 1000) [--jvms N] (default 5000) [--aggregators N]
/// (default 1) [--rule-window MINUTES] (the old-generation and timer-retained rule windows; default: the rules' own, 1 h).
/// </summary>
public static class LoadSoak
{
    /// <summary>Runs the soak and prints its samples and trend; returns 0, or 1 when the lag or the heap grew.</summary>
    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var minutes = Arg(args, "--minutes", 60);
        var rate = Arg(args, "--rate", 1000);
        var jvms = Arg(args, "--jvms", 5000);
        var aggregators = Arg(args, "--aggregators", 1);
        var ruleWindow = Arg(args, "--rule-window", 0);
        if (minutes < 1 || rate < 1 || jvms < 10 || aggregators is < 1 or > 6 || ruleWindow < 0)
        {
            Console.Error.WriteLine("soak: --minutes >= 1, --rate >= 1, --jvms >= 10, --aggregators 1 to 6, --rule-window >= 0");
            return 2;
        }

        return RunAsync(TimeSpan.FromMinutes(minutes), rate, jvms, aggregators, ruleWindow).GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(TimeSpan duration, double rate, int jvms, int aggregators, int ruleWindowMinutes)
    {
        await using var influx = await InfluxServer.StartAsync().ConfigureAwait(false);
        await using var pipeline = await LoadPipeline.StartAsync(influx, partitions: 6).ConfigureAwait(false);
        // The rules keep each JVM's samples for their window (an hour for old-generation growth and timer-retained
        // finalizables by default), so memory rises until the windows are full; a shorter window shows the plateau sooner.
        var window = TimeSpan.FromMinutes(ruleWindowMinutes);
        var rules = ruleWindowMinutes == 0 ? null : new RuleSet(
            timerRetained: new TimerRetainedFinalizableOptions { Window = window },
            oldGenGrowth: new OldGenGrowthOptions { Window = window });
        for (var i = 0; i < aggregators; i++) pipeline.StartAggregator(rules);
        var fleet = new Fleet(jvms, 5, 5, 20, DateTimeOffset.UtcNow, seed: 21);
        Console.WriteLine(Invariant($"soak: {rate:N0} samples/s from {jvms} JVMs for {duration.TotalMinutes:0} min, {aggregators} aggregator(s)"));
        var run = Task.Factory.StartNew(() => FleetRunner.Run(fleet, pipeline.Publisher, rate, duration, CancellationToken.None), TaskCreationOptions.LongRunning);
        var clock = Stopwatch.StartNew();
        var samples = new List<(double Minutes, double HeapMb, double WorkingSetMb, long Lag)>();
        while (!run.IsCompleted)
        {
            await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(30))).ConfigureAwait(false);
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            var heap = GC.GetTotalMemory(false) / 1048576.0;
            var ws = Environment.WorkingSet / 1048576.0;
            var lag = pipeline.Lag;
            samples.Add((clock.Elapsed.TotalMinutes, heap, ws, lag));
            Console.WriteLine(Invariant($"{clock.Elapsed:hh\\:mm\\:ss} live heap {heap,7:F1} MB  working set {ws,7:F1} MB  lag {lag,8:N0}  points {pipeline.PointsWritten:N0}"));
        }

        var published = await run.ConfigureAwait(false);
        var half = samples.Skip(samples.Count / 2).ToList();
        var slope = Slope(half.Select(s => (s.Minutes, s.HeapMb)).ToList()) * 60;
        var maxLag = samples.Max(s => s.Lag);
        Console.WriteLine();
        Console.WriteLine(Invariant($"offered {published.SamplesPerSecond:N0} samples/s; live heap first {samples[0].HeapMb:F1} MB, last {samples[^1].HeapMb:F1} MB, max {samples.Max(s => s.HeapMb):F1} MB; trend over the second half {slope:+0.0;-0.0} MB/h"));
        Console.WriteLine(Invariant($"lag max {maxLag:N0} messages, last {samples[^1].Lag:N0} (bounded when it stays under a few seconds' worth: {rate * 3:N0})"));
        // Flat: under 5 MB/h or under 5 % of the heap per hour; bounded lag: the last reading under 3 s of messages.
        var flat = Math.Abs(slope) < Math.Max(5, samples[^1].HeapMb * 0.05);
        var bounded = samples[^1].Lag <= rate * 3;
        Console.WriteLine($"memory {(flat ? "flat" : "GROWING")}, lag {(bounded ? "bounded" : "GROWING")}");
        return flat && bounded ? 0 : 1;
    }

    private static double Slope(List<(double X, double Y)> points)
    {
        if (points.Count < 2) return 0;
        var mx = points.Average(p => p.X);
        var my = points.Average(p => p.Y);
        var num = points.Sum(p => (p.X - mx) * (p.Y - my));
        var den = points.Sum(p => (p.X - mx) * (p.X - mx));
        return den == 0 ? 0 : num / den;
    }

    private static int Arg(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : fallback;
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
