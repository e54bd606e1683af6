using System.Diagnostics;
using Apm.Collector;

namespace Apm.EndToEnd.Tests;

/// <summary>An aggregator process killed (SIGKILL) mid-stream and started again: nothing lost, no duplicate points.</summary>
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
        var producing = Task.Run(async () =>
        {
            for (var i = 0; i < total; i++)
            {
                publisher.Publish(Pipeline.SyntheticSample($"{prefix}:{i % 10}", (ulong)(i / 10) + 1, t0 + (i * 1_000_000L)));
                if (i % 50 == 0) await Task.Delay(40);
            }

            publisher.Flush(TimeSpan.FromSeconds(30));
        });

        // Kill it once it has stored part of the stream, while messages keep coming.
        Assert.True(await Pipeline.EventuallyAsync(async () => await pipeline.CountAsync("jvm.uptime", prefix) >= 500, TimeSpan.FromSeconds(60)),
            "the first aggregator process stored nothing: " + first.Output);
        first.Process.Kill(entireProcessTree: true);
        await first.Process.WaitForExitAsync();
        var atKill = await pipeline.CountAsync("jvm.uptime", prefix);
        Assert.True(atKill < total, "the kill should land mid-stream");

        using var second = StartAggregatorProcess(pipeline);
        await producing;
        Assert.True(await Pipeline.EventuallyAsync(async () => await pipeline.CountAsync("jvm.uptime", prefix) == total, TimeSpan.FromSeconds(120)),
            $"stored {await pipeline.CountAsync("jvm.uptime", prefix)} of {total}; output: {second.Output}");
        await Task.Delay(2000);
        Assert.Equal(total, await pipeline.CountAsync("jvm.uptime", prefix));
        // Each sample has two pools: exactly two jvm.memory.used points each, no duplicates.
        Assert.Equal(2 * total, await pipeline.CountAsync("jvm.memory.used", prefix));
        second.Process.Kill(entireProcessTree: true);
    }

    private static ChildProcess StartAggregatorProcess(Pipeline pipeline)
    {
        var apm = Path.Combine(AppContext.BaseDirectory, "apm.dll");
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
        psi.Environment["Apm__Influx__Url"] = pipeline.InfluxOptions.Url!.ToString();
        psi.Environment["Apm__Aggregator__BatchMaxDelay"] = "00:00:00.300";
        psi.Environment["Apm__Aggregator__BatchMaxPoints"] = "2000";
        return new ChildProcess(Process.Start(psi)!);
    }
}
