using System.Diagnostics;
using System.Globalization;
using Apm.Aggregator;
using Apm.FleetSimulator;
using Apm.Influx;
using Apm.Protocol.V1;
using Apm.Testing;

namespace Apm.Benchmarks;

/// <summary>
/// How many samples one aggregator stores with bounded consumer lag, beside the ceiling of the same InfluxDB, and the
/// end-to-end latency at half that rate. One run, all real parts in this process (see <see cref="LoadPipeline"/>):
/// <list type="number">
/// <item>Ceiling: the same kind of points (the simulator's messages turned into line protocol by the aggregator's own
/// <see cref="SamplePoints"/>), written as raw batches of 5,000 points to another database of the same influxd, once
/// one request at a time and once with as many requests in flight as the aggregator may have
/// (<see cref="AggregatorOptions.MaxWritesInFlight"/>). Measured before and after the load; the highest counts, so the
/// aggregator is compared with the best the same writer achieves with the same concurrency.</item>
/// <item>Sustained rate: the simulator publishes at a rate that rises by 1.5x per step; a step passes when the consumer
/// lag at its end is under 3 seconds' worth of messages and the publisher kept the rate. After the first failing step
/// one step between the last good and the failing rate refines the answer.</item>
/// <item>Latency at half the sustained rate: the newest stored sample time of the JVMs of one simulated host is polled
/// every 100 ms; a sample counts as queryable at the end of the first poll that sees it.</item>
/// </list>
/// Arguments: [--seconds N] per step (default 8) [--jvms N] (default 5000) [--start-rate N] samples/s (default 1500)
/// [--aggregators N] consumer-group members in this process (default 1).
/// </summary>
public static class LoadBenchmark
{
    private const int CeilingBatchPoints = 5_000;

    /// <summary>Runs the benchmark, prints its figures and the ratio; returns the process exit code.</summary>
    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var seconds = Arg(args, "--seconds", 8);
        var jvms = Arg(args, "--jvms", 5000);
        var startRate = Arg(args, "--start-rate", 1500);
        var aggregators = Arg(args, "--aggregators", 1);
        if (seconds < 2 || jvms < 10 || startRate < 10 || aggregators is < 1 or > 6)
        {
            Console.Error.WriteLine("load: --seconds must be at least 2, --jvms at least 10, --start-rate at least 10, --aggregators 1 to 6");
            return 2;
        }

        return RunAsync(TimeSpan.FromSeconds(seconds), jvms, startRate, aggregators).GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(TimeSpan step, int jvms, double startRate, int aggregators)
    {
        var total = Stopwatch.StartNew();
        Console.WriteLine($"load: {Environment.ProcessorCount} cores, {jvms} simulated JVMs (5% leaking, 5% restarting), {step.TotalSeconds:0} s per step, {aggregators} aggregator(s)");
        await using var influx = await InfluxServer.StartAsync().ConfigureAwait(false);
        var inFlight = new AggregatorOptions().MaxWritesInFlight;
        var ceilingBefore = await MeasureCeilingAsync(influx, jvms, "ceiling_before", inFlight, printBuildCost: true).ConfigureAwait(false);

        double sustainedSamples, sustainedPoints;
        LatencyResult latency;
        await using (var pipeline = await LoadPipeline.StartAsync(influx, partitions: 6).ConfigureAwait(false))
        {
            for (var i = 0; i < aggregators; i++) pipeline.StartAggregator();
            var fleet = new Fleet(jvms, 5, 5, 20, DateTimeOffset.UtcNow, seed: 11);

            // Warm-up: the group join, JIT, InfluxDB's first shard.
            var warm = RunStep(pipeline, fleet, startRate / 2, TimeSpan.FromSeconds(5));
            Console.WriteLine(Invariant($"warm-up at {startRate / 2:N0} samples/s: lag {warm.EndLag}"));
            await DrainAsync(pipeline, TimeSpan.FromSeconds(20)).ConfigureAwait(false);

            StepResult? good = null;
            StepResult? bad = null;
            for (var rate = startRate; rate < 1_000_000; rate *= 1.5)
            {
                var r = RunStep(pipeline, fleet, rate, step);
                Print(r);
                if (!r.Bounded)
                {
                    bad = r;
                    break;
                }

                good = r;
                await DrainAsync(pipeline, TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            }

            if (good is not null && bad is not null)
            {
                await DrainAsync(pipeline, TimeSpan.FromSeconds(60)).ConfigureAwait(false);
                var middle = RunStep(pipeline, fleet, Math.Sqrt(good.Rate * bad.Rate), step);
                Print(middle);
                if (middle.Bounded) good = middle;
            }

            if (good is null)
            {
                Console.WriteLine(Invariant($"the aggregator did not keep up even at {startRate:N0} samples/s; try a lower --start-rate"));
                return 1;
            }

            sustainedSamples = good.OfferedSamplesPerSecond;
            sustainedPoints = good.PointsPerSecond;
            await DrainAsync(pipeline, TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            latency = await MeasureLatencyAsync(pipeline, fleet, sustainedSamples / 2, step * 2).ConfigureAwait(false);
        }

        var ceilingAfter = await MeasureCeilingAsync(influx, jvms, "ceiling_after", inFlight, printBuildCost: false).ConfigureAwait(false);
        var ceiling = Math.Max(ceilingBefore, ceilingAfter);

        Console.WriteLine();
        Console.WriteLine(Invariant($"{aggregators} aggregator(s), sustained with bounded lag: {sustainedSamples:N0} samples/s = {sustainedPoints:N0} points/s (rules on)"));
        Console.WriteLine(Invariant($"raw batched writes to the same InfluxDB (ceiling, best of 1 and {inFlight} requests in flight, before and after): {ceiling:N0} points/s"));
        Console.WriteLine(Invariant($"ratio aggregator / ceiling: {sustainedPoints / ceiling:F2} (aim >= 0.8)"));
        Console.WriteLine(Invariant($"end-to-end latency at {sustainedSamples / 2:N0} samples/s (sample time to queryable, {latency.Count} samples): p50 {latency.P50Ms:N0} ms, p99 {latency.P99Ms:N0} ms"));
        Console.WriteLine(Invariant($"total {total.Elapsed.TotalSeconds:F0} s"));
        return 0;
    }

    private sealed record StepResult(double Rate, double OfferedSamplesPerSecond, double PointsPerSecond, double ConsumedPerSecond, long EndLag, long MaxLag, bool ProducerKept)
    {
        /// <summary>Lag under 3 seconds' worth of messages at the end, and the offered rate was what was asked.</summary>
        public bool Bounded => ProducerKept && EndLag <= Math.Max(2_000, ConsumedPerSecond * 3);
    }

    private sealed record LatencyResult(int Count, double P50Ms, double P99Ms);

    private static StepResult RunStep(LoadPipeline pipeline, Fleet fleet, double rate, TimeSpan duration)
    {
        var points0 = pipeline.PointsWritten;
        var consumed0 = pipeline.AggregatorMetrics.Sum(m => m.MessagesConsumed);
        long maxLag = 0;
        var clock = Stopwatch.StartNew();
        var run = Task.Factory.StartNew(() => FleetRunner.Run(fleet, pipeline.Publisher, rate, duration, CancellationToken.None), TaskCreationOptions.LongRunning);
        while (!run.Wait(250)) maxLag = Math.Max(maxLag, pipeline.Lag);
        var published = run.Result;
        // Acknowledgements trail the last produce by a few milliseconds.
        pipeline.Publisher.Flush(TimeSpan.FromSeconds(5));
        var seconds = clock.Elapsed.TotalSeconds;
        var lag = pipeline.Lag;
        var points = (pipeline.PointsWritten - points0) / seconds;
        var consumed = (pipeline.AggregatorMetrics.Sum(m => m.MessagesConsumed) - consumed0) / seconds;
        return new StepResult(rate, published.SamplesPerSecond, points, consumed, lag, Math.Max(maxLag, lag), published.SamplesPerSecond >= rate * 0.95);
    }

    private static void Print(StepResult r) => Console.WriteLine(Invariant(
        $"step {r.Rate,9:N0} samples/s: offered {r.OfferedSamplesPerSecond,9:N0}, stored {r.PointsPerSecond,10:N0} points/s, consumed {r.ConsumedPerSecond,9:N0} msg/s, lag end {r.EndLag,8:N0} max {r.MaxLag,8:N0} -> {(r.Bounded ? "kept up" : r.ProducerKept ? "LAG GROWS" : "publisher could not offer the rate")}"));

    private static async Task DrainAsync(LoadPipeline pipeline, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (pipeline.Lag > 0 && deadline.Elapsed < timeout) await Task.Delay(100).ConfigureAwait(false);
    }

    /// <summary>
    /// Raw batched writes of simulator points: line protocol built ahead (its CPU cost printed when asked), then timed,
    /// first one request at a time, then <paramref name="inFlight"/> at a time (each pass to its own database, so the
    /// second does not overwrite the first's points); returns the higher rate.
    /// </summary>
    private static async Task<double> MeasureCeilingAsync(InfluxServer influx, int jvms, string database, int inFlight, bool printBuildCost)
    {
        var fleet = new Fleet(jvms, 5, 5, 20, DateTimeOffset.UtcNow.AddMinutes(-30), seed: 5);
        var previous = new Dictionary<string, JvmSample>(StringComparer.Ordinal);
        var batches = new List<string>();
        var builder = new LineProtocolBuilder(1 << 20);
        var messages = new List<CollectorMessage>();
        var time = DateTimeOffset.UtcNow.AddMinutes(-30);
        var points = 0L;
        var buildCpu = TimeSpan.Zero;
        long buildBytes = 0;
        using var self = Process.GetCurrentProcess();
        // 400,000 points: long enough to dominate request overheads, small enough to build in memory (about 60 MB).
        while (points < 400_000)
        {
            messages.Clear();
            time = time.AddMilliseconds(1);
            fleet.StepNext(time, messages);
            // Process CPU time, not wall time: the machine is shared, and nothing else of the benchmark runs yet.
            self.Refresh();
            var started = self.TotalProcessorTime;
            var allocated = GC.GetAllocatedBytesForCurrentThread();
            foreach (var m in messages)
            {
                JvmSample? prev = null;
                if (m.BodyCase == CollectorMessage.BodyOneofCase.Sample)
                {
                    previous.TryGetValue(m.Sample.Jvm.JvmId, out prev);
                    previous[m.Sample.Jvm.JvmId] = m.Sample;
                }

                points += SamplePoints.Append(builder, m, prev);
                if (builder.PointCount >= CeilingBatchPoints)
                {
                    batches.Add(builder.ToString());
                    builder.Clear();
                }
            }

            self.Refresh();
            buildCpu += self.TotalProcessorTime - started;
            buildBytes += GC.GetAllocatedBytesForCurrentThread() - allocated;
        }

        if (builder.PointCount > 0) batches.Add(builder.ToString());
        if (printBuildCost)
        {
            var seconds = buildCpu.TotalSeconds;
            Console.WriteLine(Invariant(
                $"line protocol from messages (SamplePoints): {seconds * 1e9 / points:N0} ns of CPU (JIT and GC included) and {(double)buildBytes / points:N0} bytes allocated per point (the batch strings: 2 bytes a character)"));
        }

        var serial = await WriteAllAsync(influx, database + "_1", batches, 1).ConfigureAwait(false);
        var concurrent = inFlight > 1 ? await WriteAllAsync(influx, database + "_" + inFlight, batches, inFlight).ConfigureAwait(false) : 0;
        Console.WriteLine(Invariant(
            $"ceiling ({database}: raw batched line protocol): {serial:N0} points/s one request at a time{(inFlight > 1 ? Invariant($", {concurrent:N0} points/s with {inFlight} in flight") : "")}"));
        return Math.Max(serial, concurrent);
    }

    private static async Task<double> WriteAllAsync(InfluxServer influx, string database, List<string> batches, int inFlight)
    {
        var options = new InfluxOptions { Url = influx.Url, Database = database, Timeout = TimeSpan.FromMinutes(1) };
        using var writer = new InfluxWriter(options);
        await writer.EnsureDatabaseAsync().ConfigureAwait(false);
        var next = -1;
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, inFlight).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < batches.Count) await writer.WriteAsync(batches[i]).ConfigureAwait(false);
        }));
        await Task.WhenAll(workers).ConfigureAwait(false);
        return writer.PointsWritten / clock.Elapsed.TotalSeconds;
    }

    private static async Task<LatencyResult> MeasureLatencyAsync(LoadPipeline pipeline, Fleet fleet, double rate, TimeSpan duration)
    {
        // The probes: every sample of the JVMs on one simulated host, by JVM id, in publish order.
        const string probeHost = "sim-host-0001";
        var sent = new Dictionary<string, Queue<long>>(StringComparer.Ordinal);
        var latencies = new List<double>();
        void Observe(CollectorMessage m)
        {
            if (m.BodyCase != CollectorMessage.BodyOneofCase.Sample || m.Sample.Jvm.Host != probeHost) return;
            lock (sent)
            {
                if (!sent.TryGetValue(m.Sample.Jvm.JvmId, out var q)) sent[m.Sample.Jvm.JvmId] = q = new Queue<long>();
                q.Enqueue(m.Sample.TimeUnixNanos);
            }
        }

        var run = Task.Factory.StartNew(() => FleetRunner.Run(fleet, pipeline.Publisher, rate, duration, CancellationToken.None, Observe), TaskCreationOptions.LongRunning);
        var query = "SELECT last(\"value\") FROM \"jvm.uptime\" WHERE \"host\" = " + InfluxQl.QuoteString(probeHost) + " AND time > now() - 5m GROUP BY \"jvm_id\"";
        var tail = Stopwatch.StartNew();
        while (!run.IsCompleted || tail.Elapsed < duration + TimeSpan.FromSeconds(5))
        {
            var result = await pipeline.Query.QueryAsync(query).ConfigureAwait(false);
            var seenAt = DateTimeOffset.UtcNow;
            var seenNanos = (seenAt.UtcTicks - DateTime.UnixEpoch.Ticks) * 100;
            lock (sent)
            {
                foreach (var series in result.Series)
                {
                    if (!series.Tags.TryGetValue("jvm_id", out var id) || !sent.TryGetValue(id, out var q) || series.Values.Count == 0) continue;
                    var newest = series.Values[0][0].GetInt64();
                    while (q.Count > 0 && q.Peek() <= newest) latencies.Add((seenNanos - q.Dequeue()) / 1e6);
                }
            }

            if (run.IsCompleted && sent.Values.All(q => q.Count == 0)) break;
            await Task.Delay(100).ConfigureAwait(false);
        }

        await run.ConfigureAwait(false);
        latencies.Sort();
        return latencies.Count == 0
            ? new LatencyResult(0, double.NaN, double.NaN)
            : new LatencyResult(latencies.Count, Percentile(latencies, 0.50), Percentile(latencies, 0.99));
    }

    private static double Percentile(List<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

    private static int Arg(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : fallback;
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
