using Apm.Aggregator;
using Apm.Collector;

namespace Apm.EndToEnd.Tests;

/// <summary>
/// Scale-out: aggregators joining and leaving one consumer group on a three-broker cluster, with a broker down during a
/// rebalance. Every sample is stored exactly once (counted per JVM), none lost.
/// </summary>
public sealed class RebalanceTests
{
    [Fact]
    public async Task A_member_joining_and_one_leaving_with_a_broker_down_in_between_loses_nothing_and_stores_each_sample_once()
    {
        await using var pipeline = await Pipeline.StartAsync(brokers: 3);
        var metrics = new CollectorMetrics();
        using var publisher = pipeline.CreatePublisher(metrics);
        var prefix = "rebalance-" + Guid.NewGuid().ToString("N")[..8];
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
        const int jvms = 24;
        const int total = 4800;
        var options = new AggregatorOptions { BatchMaxDelay = TimeSpan.FromMilliseconds(300) };

        var first = pipeline.StartAggregator(options);
        AggregatorRunner? second = null;
        var producing = Pipeline.PublishSteadilyAsync(publisher, prefix, jvms, total, t0, 100, TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(60));

        // A second member joins mid-stream: the group rebalances, partitions move.
        Assert.True(await Pipeline.EventuallyAsync(async () => await pipeline.CountAsync("jvm.uptime", prefix) >= 800, TimeSpan.FromSeconds(60)), "the first member stored nothing");
        second = pipeline.StartAggregator(options);
        // A broker goes down while the group settles, and comes back.
        await Task.Delay(1000);
        pipeline.Kafka.SetBrokerDown(2);
        await Task.Delay(3000);
        pipeline.Kafka.SetBrokerUp(2);
        Assert.True(await Pipeline.EventuallyAsync(() => Task.FromResult(second.Metrics.AssignedPartitions > 0 && first.Metrics.AssignedPartitions > 0), TimeSpan.FromSeconds(60)),
            $"partitions were not shared: first {first.Metrics.AssignedPartitions}, second {second.Metrics.AssignedPartitions}");

        // The first member leaves (a clean close: it stores and commits what it holds, then the group rebalances).
        first.Dispose();
        await producing;
        await pipeline.AssertStoredExactlyOnceAsync(prefix, total, () => $"second member: {second.Metrics.AssignedPartitions} partitions, {second.Metrics.MessagesConsumed} consumed");
        Assert.Equal(0, metrics.SamplesDropped);
        Assert.Null(second.Failure);
        second.Dispose();
    }
}
