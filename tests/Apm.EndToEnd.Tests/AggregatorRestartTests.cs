using System.Diagnostics;
using System.Net.Http.Json;
using Apm.Collector;

namespace Apm.EndToEnd.Tests;

/// <summary>Aggregator processes killed (SIGKILL) mid-stream: restarted alone, or beside a second member; nothing lost, no duplicate points. And stopped (SIGTERM) with Kafka gone.</summary>
public sealed class AggregatorRestartTests
{
    [Fact]
    public async Task An_aggregator_killed_mid_stream_and_restarted_loses_nothing_and_stores_no_duplicates()
    {
        await using var pipeline = await Pipeline.StartAsync();
        var metrics = new CollectorMetrics();
        using var publisher = pipeline.CreatePublisher(metrics);
        var prefix = "agg-kill-" + Guid.NewGuid().ToString("N")[..8];
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
        const int total = 3000;

        using var first = StartAggregatorProcess(pipeline);
        var producing = Pipeline.PublishSteadilyAsync(publisher, prefix, 10, total, t0, 50, TimeSpan.FromMilliseconds(40), TimeSpan.FromSeconds(30));

        // Kill it once it has stored part of the stream, while messages keep coming.
        Assert.True(await Pipeline.EventuallyAsync(async () => await pipeline.CountAsync("jvm.uptime", prefix) >= 500, TimeSpan.FromSeconds(60)),
            "the first aggregator process stored nothing: " + first.Output);
        first.Process.Kill(entireProcessTree: true);
        await first.Process.WaitForExitAsync();
        var atKill = await pipeline.CountAsync("jvm.uptime", prefix);
        Assert.True(atKill < total, "the kill should land mid-stream");

        using var second = StartAggregatorProcess(pipeline);
        await producing;
        await pipeline.AssertStoredExactlyOnceAsync(prefix, total, () => $"output: {second.Output}");
        second.Process.Kill(entireProcessTree: true);
    }

    [Fact]
    public async Task One_of_two_aggregator_processes_killed_mid_stream_hands_its_partitions_to_the_other_without_loss_or_duplicates()
    {
        await using var pipeline = await Pipeline.StartAsync(brokers: 3);
        var metrics = new CollectorMetrics();
        using var publisher = pipeline.CreatePublisher(metrics);
        var prefix = "member-death-" + Guid.NewGuid().ToString("N")[..8];
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
        const int jvms = 24;
        const int total = 4800;

        using var doomed = StartAggregatorProcess(pipeline, out var doomedHealth);
        using var survivor = StartAggregatorProcess(pipeline, out var survivorHealth);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        // Both members hold partitions before any data flows, and between them all six: while the second joins, the
        // one that held all six may still say so after the newcomer has reported its share (seen once under load).
        Assert.True(await Pipeline.EventuallyAsync(async () => await PartitionsAsync(http, doomedHealth) is var d && await PartitionsAsync(http, survivorHealth) is var s
                && d > 0 && s > 0 && d + s == 6, TimeSpan.FromSeconds(90)),
            $"the two members did not share the partitions: {await PartitionsAsync(http, doomedHealth)} and {await PartitionsAsync(http, survivorHealth)}\n{doomed.Output}\n{survivor.Output}");
        var survivorBefore = await PartitionsAsync(http, survivorHealth);
        Assert.InRange(survivorBefore, 1, 5);

        var producing = Pipeline.PublishSteadilyAsync(publisher, prefix, jvms, total, t0, 100, TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(60));

        // SIGKILL one member once part of the stream is stored: no revocation handler runs, its uncommitted batch is
        // gone with it; the group notices when its session times out and the survivor replays from the last commit.
        Assert.True(await Pipeline.EventuallyAsync(async () => await pipeline.CountAsync("jvm.uptime", prefix) >= 1000, TimeSpan.FromSeconds(60)),
            "nothing was stored before the kill");
        doomed.Process.Kill(entireProcessTree: true);
        await doomed.Process.WaitForExitAsync();
        Assert.True(await pipeline.CountAsync("jvm.uptime", prefix) < total, "the kill should land mid-stream");

        Assert.True(await Pipeline.EventuallyAsync(async () => await PartitionsAsync(http, survivorHealth) == 6, TimeSpan.FromSeconds(60)),
            $"the survivor did not take over every partition: it holds {await PartitionsAsync(http, survivorHealth)}\n{survivor.Output}");
        await producing;
        await pipeline.AssertStoredExactlyOnceAsync(prefix, total, () => $"survivor: {survivor.Output}");
        Assert.Equal(0, metrics.SamplesDropped);
    }

    [Fact]
    public async Task An_aggregator_whose_Kafka_died_mid_stream_stops_on_SIGTERM_and_its_successor_loses_nothing()
    {
        await using var pipeline = await Pipeline.StartAsync();
        var metrics = new CollectorMetrics();
        using var publisher = pipeline.CreatePublisher(metrics, bufferMessages: 100_000);
        var prefix = "dead-kafka-" + Guid.NewGuid().ToString("N")[..8];
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
        const int total = 2000;
        using var first = StartAggregatorProcess(pipeline);
        var producing = Pipeline.PublishSteadilyAsync(publisher, prefix, 10, total, t0, 10, TimeSpan.FromMilliseconds(40), TimeSpan.FromSeconds(30));
        Assert.True(await Pipeline.EventuallyAsync(async () => await pipeline.CountAsync("jvm.uptime", prefix) >= 300, TimeSpan.FromSeconds(90)),
            "nothing was stored: " + first.Output);

        // Kafka goes away under it mid-stream (the only broker refuses connections), then the operator stops the service.
        pipeline.Kafka.SetBrokerDown(1);
        await Task.Delay(1000);
        var stopping = Stopwatch.StartNew();
        Apm.Testing.Signals.Send(first.Process.Id, Apm.Testing.Signals.Term);
        var exited = await Task.Run(() => first.Process.WaitForExit(TimeSpan.FromSeconds(120)));
        stopping.Stop();
        Assert.True(exited, "the aggregator did not exit within 120 s of SIGTERM with Kafka down: " + first.Output);
        Assert.Equal(0, first.Process.ExitCode);
        Console.WriteLine($"aggregator stopped {stopping.Elapsed.TotalSeconds:F1} s after SIGTERM with Kafka down");
        var atStop = await pipeline.CountAsync("jvm.uptime", prefix);
        Assert.True(atStop < total, "the stop should land mid-stream");

        // Kafka returns; a new aggregator replays from the last commit: every sample exactly once.
        pipeline.Kafka.SetBrokerUp(1);
        await producing;
        Assert.Equal(0, publisher.Flush(TimeSpan.FromSeconds(60)));
        using var second = StartAggregatorProcess(pipeline);
        await pipeline.AssertStoredExactlyOnceAsync(prefix, total, () => $"output: {second.Output}");
        Assert.Equal(0, metrics.SamplesDropped);
        second.Process.Kill(entireProcessTree: true);
    }

    private static async Task<long> PartitionsAsync(HttpClient http, Uri health)
    {
        try
        {
            var json = await http.GetFromJsonAsync<System.Text.Json.JsonElement>(health);
            return json.GetProperty("counters").GetProperty("aggregator.assigned_partitions").GetInt64();
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException or KeyNotFoundException)
        {
            return -1;
        }
    }

    private static ChildProcess StartAggregatorProcess(Pipeline pipeline) => StartAggregatorProcess(pipeline, out _);

    private static ChildProcess StartAggregatorProcess(Pipeline pipeline, out Uri health)
    {
        var apm = Path.Combine(AppContext.BaseDirectory, "apm.dll");
        var port = Apm.Testing.FreePort.Next();
        health = new Uri($"http://127.0.0.1:{port}/healthz");
        var psi = new ProcessStartInfo("dotnet", [apm, "aggregator"])
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.Environment["Apm__Kafka__BootstrapServers"] = pipeline.KafkaOptions.BootstrapServers;
        psi.Environment["Apm__Kafka__EnsureTopics"] = "false"; // the test created them on the mock cluster
        // The mock cluster rebalances away from a killed member only when its session times out (45 s by
        // default): a short session keeps the test about the replay, not about waiting.
        psi.Environment["Apm__Kafka__Extra__session.timeout.ms"] = "6000";
        psi.Environment["Apm__Kafka__Extra__heartbeat.interval.ms"] = "1000";
        psi.Environment["Apm__Kafka__Extra__max.poll.interval.ms"] = "30000";
        psi.Environment["Apm__Influx__Url"] = pipeline.InfluxOptions.Url!.ToString();
        psi.Environment["Apm__Aggregator__BatchMaxDelay"] = "00:00:00.300";
        psi.Environment["Apm__Aggregator__BatchMaxPoints"] = "2000";
        psi.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        psi.Environment["Apm__DataDirectory"] = Directory.CreateTempSubdirectory("apm-aggregator-").FullName;
        return new ChildProcess(Process.Start(psi)!);
    }
}
