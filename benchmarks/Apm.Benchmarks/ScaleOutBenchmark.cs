using System.Diagnostics;
using System.Globalization;
using Apm.Collector;
using Apm.FleetSimulator;
using Apm.Influx;
using Apm.Kafka;
using Apm.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Apm.Benchmarks;

/// <summary>
/// The gain of adding aggregators, with each <c>apm aggregator</c> process capped at the same share of a CPU (a cgroup
/// CPU quota, as a container or a small host would give it), so that the aggregators, not this machine's two cores,
/// are the limit. For 1, then 2 (up to --members) consumer-group members:
/// <list type="number">
/// <item>a backlog of simulated samples is published while no member runs (through the collector's real publisher),
/// --backlog messages per member;</item>
/// <item>the members start in their CPU groups and consume it; the capacity is the rate at which they consume once
/// every member holds partitions, between 10 % and 90 % of the backlog (start-up, JIT and the tail left out), with the
/// CPU each member used and how often it hit its cap;</item>
/// <item>a steady step at 85 % of that capacity checks that the lag stays bounded at that rate;</item>
/// <item>the members are stopped with SIGTERM (they commit what they stored) before the next round.</item>
/// </list>
/// Prints the capacity per round and the gain against one member (2.0 would be perfect scaling).
/// Arguments: [--cores C] per member (0.3) [--members N] (2) [--backlog N] messages per member (30000) [--seconds N]
/// for the steady step (15) [--jvms N] (5000). Needs a writable cgroup CPU controller (root).
/// </summary>
public static class ScaleOutBenchmark
{
    /// <summary>Runs the benchmark; returns 0 when every round produced a figure.</summary>
    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var cores = ArgDouble(args, "--cores", 0.3);
        var members = (int)ArgDouble(args, "--members", 2);
        var backlog = (int)ArgDouble(args, "--backlog", 30_000);
        var seconds = (int)ArgDouble(args, "--seconds", 15);
        var jvms = (int)ArgDouble(args, "--jvms", 5000);
        if (!(cores >= 0.05) || members is < 1 or > 6 || backlog < 1000 || seconds < 2 || jvms < 10)
        {
            Console.Error.WriteLine("scaleout: --cores >= 0.05, --members 1 to 6, --backlog >= 1000, --seconds >= 2, --jvms >= 10");
            return 2;
        }

        if (CpuLimit.Unavailable() is { } why)
        {
            Console.Error.WriteLine("scaleout: needs CPU control groups to cap each aggregator: " + why);
            return 2;
        }

        return RunAsync(cores, members, backlog, TimeSpan.FromSeconds(seconds), jvms).GetAwaiter().GetResult();
    }

    private sealed record Round(int Members, double MessagesPerSecond, double SamplesPerSecond, double PointsPerSecond,
        double[] CoresUsed, double[] ThrottledShare, double MachineBusy, bool SteadyKept, long SteadyEndLag);

    private static async Task<int> RunAsync(double cores, int maxMembers, int backlogPerMember, TimeSpan step, int jvmCount)
    {
        var work = Directory.CreateTempSubdirectory("apm-scaleout-");
        try
        {
            await using var services = await BackingServices.StartAsync().ConfigureAwait(false);
            var common = services.Environment();
            // A member that does not rejoin is given up after 30 s, not the production 10 minutes (see LoadPipeline).
            common["Apm__Kafka__Extra__session.timeout.ms"] = "10000";
            common["Apm__Kafka__Extra__heartbeat.interval.ms"] = "1000";
            common["Apm__Kafka__Extra__max.poll.interval.ms"] = "30000";
            common["Apm__Alerts__HeapDumpRules"] = "";

            var publisherMetrics = new CollectorMetrics();
            using var publisher = services.StartPublisher(publisherMetrics);
            // Sample time starts in the recent past, so that the backlogs' simulated time stays behind the wall clock the
            // steady steps stamp their samples with (time only moves forward per JVM).
            var sampleTime = new SampleClock(DateTimeOffset.UtcNow.AddMinutes(-30));
            var fleet = new Fleet(jvmCount, 5, 5, 20, sampleTime.Value, seed: 31);
            Console.WriteLine(Invariant($"scaleout: {Environment.ProcessorCount} cores on this machine; each aggregator process capped at {cores:0.##} cores; {jvmCount:N0} simulated JVMs; backlog {backlogPerMember:N0} messages per member; rules on"));

            var rounds = new List<Round>();
            for (var n = 1; n <= maxMembers; n++)
            {
                var round = await RoundAsync(n, cores, backlogPerMember * n, step, work, common, fleet, sampleTime, publisher, publisherMetrics).ConfigureAwait(false);
                if (round is null) return 1;
                rounds.Add(round);
            }

            Console.WriteLine();
            var one = rounds[0];
            foreach (var r in rounds)
            {
                Console.WriteLine(Invariant(
                    $"{r.Members} member(s) at {cores:0.##} cores each: {r.MessagesPerSecond,7:N0} messages/s = {r.SamplesPerSecond,7:N0} samples/s = {r.PointsPerSecond,8:N0} points/s; gain {r.MessagesPerSecond / one.MessagesPerSecond:F2}x (ideal {r.Members}.00); ")
                    + Invariant($"{r.CoresUsed.Sum() * 1e6 / r.MessagesPerSecond:N0} µs of CPU per message; ")
                    + Invariant($"CPU per member {string.Join(" / ", r.CoresUsed.Select(c => c.ToString("0.00", CultureInfo.InvariantCulture)))} cores, at its cap in {string.Join(" / ", r.ThrottledShare.Select(t => t.ToString("P0", CultureInfo.InvariantCulture)))} of periods; ")
                    + Invariant($"machine {r.MachineBusy:P0} busy; steady at 85 %: {(r.SteadyKept ? "kept up" : "LAG GREW")} (lag at its end {r.SteadyEndLag:N0})"));
            }

            return 0;
        }
        finally
        {
            try
            {
                work.Delete(recursive: true);
            }
            catch (IOException)
            {
                // A child may still be closing a file.
            }
        }
    }

    private sealed class SampleClock(DateTimeOffset start)
    {
        public DateTimeOffset Value { get; set; } = start;
    }

    private static async Task<Round?> RoundAsync(int n, double cores, int backlog, TimeSpan steadyStep, DirectoryInfo work, Dictionary<string, string> common,
        Fleet fleet, SampleClock sampleTime, CollectorPublisher publisher, CollectorMetrics publisherMetrics)
    {
        // The backlog first, while no member runs: the members then consume as fast as their CPU lets them. Its samples are
        // stamped as the fleet would make them (every JVM every 5 s of sample time), not as fast as they are published:
        // the rules evaluate each JVM once per interval of sample time, so squeezed time would make them look cheaper.
        var before = publisherMetrics.SamplesPublished;
        var clock0 = Stopwatch.StartNew();
        var step = TimeSpan.FromSeconds(5) / fleet.Jvms.Count;
        var buffer = new List<Apm.Protocol.V1.CollectorMessage>(8);
        long messages = 0, samples = 0, calls = 0;
        while (messages < backlog)
        {
            buffer.Clear();
            sampleTime.Value += step;
            calls++;
            fleet.StepNext(sampleTime.Value, buffer);
            foreach (var m in buffer)
            {
                while (!publisher.Publish(m)) Thread.Sleep(1);
                messages++;
                if (m.BodyCase == Apm.Protocol.V1.CollectorMessage.BodyOneofCase.Sample) samples++;
            }
        }

        publisher.Flush(TimeSpan.FromSeconds(30));
        var published = publisherMetrics.SamplesPublished - before;
        var samplesPerMessage = messages > 0 ? (double)samples / messages : 1;
        Console.WriteLine(Invariant($"round {n}: backlog of {published:N0} messages ({samples:N0} samples, {(step * calls).TotalSeconds:F0} s of sample time) published in {clock0.Elapsed.TotalSeconds:F1} s"));

        var limits = new List<CpuLimit>();
        var members = new List<ApmProcess>();
        try
        {
            for (var i = 0; i < n; i++)
            {
                var limit = CpuLimit.Create(Invariant($"apm-scaleout-{Environment.ProcessId}-{n}-{i}"), cores);
                limits.Add(limit);
                members.Add(ApmProcess.Start(Invariant($"aggregator-{n}-{i + 1}"), "aggregator", work, common, [], limit));
            }

            foreach (var m in members) await m.WaitHealthyAsync(TimeSpan.FromSeconds(120)).ConfigureAwait(false);

            // Consumption of the backlog, read every 250 ms from the members' /metrics.
            var clock = Stopwatch.StartNew();
            Snapshot? start = null, end = null;
            long consumed = 0;
            var deadline = TimeSpan.FromSeconds(60) + TimeSpan.FromSeconds(backlog / (200.0 * n * cores));
            while (clock.Elapsed < deadline)
            {
                var s = await SnapshotAsync(members, limits, clock.Elapsed).ConfigureAwait(false);
                consumed = s.Consumed;
                if (start is null && s.Partitions.All(p => p > 0) && s.Partitions.Sum() == 6 && consumed >= published / 10) start = s;
                if (start is not null && consumed >= published * 9 / 10)
                {
                    end = s;
                    break;
                }

                if (members.FirstOrDefault(m => m.Process.HasExited) is { } dead)
                {
                    Console.Error.WriteLine($"scaleout: {dead.Name} exited with {dead.Process.ExitCode}:\n{dead.Output}");
                    return null;
                }

                await Task.Delay(250).ConfigureAwait(false);
            }

            if (start is null || end is null)
            {
                Console.Error.WriteLine(Invariant($"scaleout: round {n} consumed {consumed:N0} of {published:N0} messages within {deadline.TotalSeconds:F0} s{(start is null ? " (the group never settled with every member holding partitions while the backlog lasted; try a larger --backlog)" : "")}"));
                foreach (var m in members) Console.Error.WriteLine($"{m.Name}:\n{m.Output}");
                return null;
            }

            var seconds = (end.Elapsed - start.Elapsed).TotalSeconds;
            var rate = (end.Consumed - start.Consumed) / seconds;
            var coresUsed = Enumerable.Range(0, n).Select(i => (end.CpuMs[i] - start.CpuMs[i]) / 1000.0 / seconds).ToArray();
            var throttled = Enumerable.Range(0, n).Select(i =>
                end.Periods[i] - start.Periods[i] is var p and > 0 ? (double)(end.Throttled[i] - start.Throttled[i]) / p : 0).ToArray();
            var busy = MachineBusy(start.MachineTicks, end.MachineTicks);
            var points = (end.Points - start.Points) / seconds;
            Console.WriteLine(Invariant($"round {n}: consumed {end.Consumed - start.Consumed:N0} messages in {seconds:F1} s = {rate:N0} messages/s, {points:N0} points/s; CPU per member {string.Join(" / ", coresUsed.Select(c => c.ToString("0.00", CultureInfo.InvariantCulture)))} cores; machine {busy:P0} busy"));

            // Drain the rest, then hold 85 % of that capacity for a step.
            var drainUntil = clock.Elapsed + TimeSpan.FromSeconds(120);
            while ((await SnapshotAsync(members, limits, clock.Elapsed).ConfigureAwait(false)).Consumed < published && clock.Elapsed < drainUntil)
                await Task.Delay(250).ConfigureAwait(false);
            var baseConsumed = (await SnapshotAsync(members, limits, clock.Elapsed).ConfigureAwait(false)).Consumed;
            var basePublished = publisherMetrics.SamplesPublished;
            var steadySamples = rate * 0.85 * samplesPerMessage;
            var run = Task.Factory.StartNew(() => FleetRunner.Run(fleet, publisher, steadySamples, steadyStep, CancellationToken.None), TaskCreationOptions.LongRunning);
            await run.ConfigureAwait(false);
            publisher.Flush(TimeSpan.FromSeconds(5));
            var after = await SnapshotAsync(members, limits, clock.Elapsed).ConfigureAwait(false);
            var endLag = Math.Max(0, publisherMetrics.SamplesPublished - basePublished - (after.Consumed - baseConsumed));
            var kept = endLag <= rate * 3;
            Console.WriteLine(Invariant($"round {n}: steady {steadySamples:N0} samples/s for {steadyStep.TotalSeconds:0} s: lag at the end {endLag:N0} messages -> {(kept ? "kept up" : "LAG GREW")}"));
            return new Round(n, rate, rate * samplesPerMessage, points, coresUsed, throttled, busy, kept, endLag);
        }
        finally
        {
            foreach (var m in members) m.Stop(TimeSpan.FromSeconds(20));
            foreach (var l in limits) l.Dispose();
        }
    }

    private sealed record Snapshot(TimeSpan Elapsed, long Consumed, long Points, int[] Partitions, long[] CpuMs, long[] Periods, long[] Throttled, long[] MachineTicks);

    private static async Task<Snapshot> SnapshotAsync(List<ApmProcess> members, List<CpuLimit> limits, TimeSpan elapsed)
    {
        var metrics = await Task.WhenAll(members.Select(m => m.ReadMetricsAsync())).ConfigureAwait(false);
        var throttling = limits.Select(l => l.Throttling()).ToArray();
        return new Snapshot(
            elapsed,
            metrics.Sum(m => m.GetValueOrDefault("apm_aggregator_messages_consumed")),
            metrics.Sum(m => m.GetValueOrDefault("apm_aggregator_points_written")),
            metrics.Select(m => (int)m.GetValueOrDefault("apm_aggregator_assigned_partitions")).ToArray(),
            metrics.Select(m => m.GetValueOrDefault("apm_process_cpu_ms")).ToArray(),
            throttling.Select(t => t.Periods).ToArray(),
            throttling.Select(t => t.Throttled).ToArray(),
            MachineTicks());
    }

    /// <summary>The first line of /proc/stat: the machine's CPU ticks by kind.</summary>
    private static long[] MachineTicks() =>
        File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(v => long.Parse(v, CultureInfo.InvariantCulture)).ToArray();

    /// <summary>The share of the machine's CPU time that was not idle (idle and iowait are fields 4 and 5).</summary>
    private static double MachineBusy(long[] from, long[] to)
    {
        var total = to.Sum() - from.Sum();
        var idle = to[3] - from[3] + (to.Length > 4 ? to[4] - from[4] : 0);
        return total > 0 ? 1 - (double)idle / total : 0;
    }

    private static double ArgDouble(string[] args, string name, double fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length && double.TryParse(args[i + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : fallback;
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
