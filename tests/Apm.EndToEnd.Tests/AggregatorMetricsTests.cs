using Apm.Aggregator;
using Apm.Collector;

namespace Apm.EndToEnd.Tests;

/// <summary>The aggregator's operational gauges (/metrics): consumer lag, batch size, write time.</summary>
public sealed class AggregatorMetricsTests
{
    [Fact]
    public async Task Consumer_lag_rises_while_a_backlog_is_consumed_and_returns_to_zero_batches_are_measured()
    {
        await using var pipeline = await Pipeline.StartAsync();
        var metrics = new CollectorMetrics();
        using var publisher = pipeline.CreatePublisher(metrics);
        var prefix = "lag-" + Guid.NewGuid().ToString("N")[..8];
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
        const int total = 3000;
        for (var i = 0; i < total; i++) publisher.Publish(Pipeline.SyntheticSample($"{prefix}:{i % 10}", (ulong)(i / 10) + 1, t0 + (i * 1_000_000L)));
        Assert.Equal(0, publisher.Flush(TimeSpan.FromSeconds(30)));

        // The backlog is there before the aggregator starts; small batches make many commits along the way.
        using var aggregator = pipeline.StartAggregator(new AggregatorOptions { BatchMaxPoints = 500, BatchMaxDelay = TimeSpan.FromMilliseconds(200) });
        long maxLag = 0;
        var stored = await Pipeline.EventuallyAsync(async () =>
        {
            maxLag = Math.Max(maxLag, aggregator.Metrics.ConsumerLag);
            return await pipeline.CountAsync("jvm.uptime", prefix) == total;
        }, TimeSpan.FromSeconds(60));
        Assert.True(stored, "the backlog was not stored");
        Assert.True(maxLag > 0, "no lag was seen while 3,000 samples were behind");
        Assert.True(await Pipeline.EventuallyAsync(() => Task.FromResult(aggregator.Metrics.ConsumerLag == 0), TimeSpan.FromSeconds(10)),
            $"lag stayed at {aggregator.Metrics.ConsumerLag}");
        Assert.InRange(aggregator.Metrics.LastBatchPoints, 1, 600);
    }
}
