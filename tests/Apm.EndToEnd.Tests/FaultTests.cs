using System.Diagnostics;
using Apm.Collector;
using Apm.Kafka;
using Confluent.Kafka;

namespace Apm.EndToEnd.Tests;

/// <summary>
/// Faults in the middle of a stream, each with an exact count of what was stored. Samples are synthetic
/// (distinct timestamps, so each is exactly one point per measurement) but go through the real
/// producer, the mock Kafka broker, the real aggregator and a real influxd.
/// </summary>
public sealed class FaultTests
{
    private const string PointsPerSample = "jvm.uptime"; // exactly one point per sample

    [Fact]
    public async Task InfluxDB_stopped_for_30_seconds_loses_nothing_and_duplicates_nothing()
    {
        await using var pipeline = await Pipeline.StartAsync();
        using var aggregator = pipeline.StartAggregator();
        var metrics = new CollectorMetrics();
        using var publisher = pipeline.CreatePublisher(metrics);
        var prefix = "influx-down-" + Guid.NewGuid().ToString("N")[..8];
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
        const int total = 600;
        var sent = 0;
        async Task SendAsync(int count)
        {
            for (var i = 0; i < count; i++, sent++)
            {
                Assert.True(publisher.Publish(Pipeline.SyntheticSample($"{prefix}:{sent % 3}", (ulong)(sent / 3) + 1, t0 + (sent * 1_000_000L))));
                if (i % 20 == 0) await Task.Delay(50);
            }
        }

        await SendAsync(200);
        Assert.True(await Pipeline.EventuallyAsync(async () => await pipeline.CountAsync(PointsPerSample, prefix) == 200, TimeSpan.FromSeconds(30)));

        await pipeline.Influx.Server.StopAsync();
        var stoppedAt = Stopwatch.StartNew();
        await SendAsync(200);
        await Task.Delay(TimeSpan.FromSeconds(30) - stoppedAt.Elapsed);
        Assert.True(aggregator.Metrics.WriteFailures > 0, "the aggregator should have seen failed writes while InfluxDB was down");
        await pipeline.Influx.Server.StartAgainAsync();
        await SendAsync(total - 400);

        Assert.True(await Pipeline.EventuallyAsync(async () => await pipeline.CountAsync(PointsPerSample, prefix) == total, TimeSpan.FromSeconds(60)),
            $"stored {await pipeline.CountAsync(PointsPerSample, prefix)} of {total}");
        await Task.Delay(1500); // nothing more may arrive
        Assert.Equal(total, await pipeline.CountAsync(PointsPerSample, prefix));
        Assert.Equal(0, metrics.SamplesDropped);
        Assert.Null(aggregator.Failure);
    }

    [Fact]
    public async Task A_broker_down_and_up_loses_nothing_within_the_buffer_and_counts_drops_beyond_it()
    {
        await using var pipeline = await Pipeline.StartAsync();
        using var aggregator = pipeline.StartAggregator();
        var metrics = new CollectorMetrics();
        const int buffer = 150;
        using var publisher = pipeline.CreatePublisher(metrics, bufferMessages: buffer);
        var prefix = "broker-down-" + Guid.NewGuid().ToString("N")[..8];
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
        var seq = 0;
        for (; seq < 100; seq++) Assert.True(publisher.Publish(Pipeline.SyntheticSample(prefix, (ulong)seq + 1, t0 + (seq * 1_000_000L))));
        Assert.Equal(0, publisher.Flush(TimeSpan.FromSeconds(30)));

        pipeline.Kafka.SetBrokerDown(1);
        await Task.Delay(500);
        var accepted = 0;
        for (var i = 0; i < 250; i++, seq++)
        {
            if (publisher.Publish(Pipeline.SyntheticSample(prefix, (ulong)seq + 1, t0 + (seq * 1_000_000L)))) accepted++;
        }

        await Task.Delay(2000);
        pipeline.Kafka.SetBrokerUp(1);
        Assert.Equal(0, publisher.Flush(TimeSpan.FromSeconds(60)));

        // Everything the buffer accepted arrives; everything beyond it was refused and counted.
        Assert.Equal(250 - accepted, metrics.SamplesDropped);
        Assert.True(metrics.SamplesDropped > 0, "the buffer bound should have been reached");
        Assert.True(accepted >= buffer - 1, $"the buffer should hold about {buffer} messages, held {accepted}");
        var expected = 100 + accepted;
        Assert.True(await Pipeline.EventuallyAsync(async () => await pipeline.CountAsync(PointsPerSample, prefix) == expected, TimeSpan.FromSeconds(60)),
            $"stored {await pipeline.CountAsync(PointsPerSample, prefix)} of {expected}");
        Assert.Equal(0, metrics.DeliveryFailures);
    }

    [Fact]
    public async Task A_garbage_message_is_dead_lettered_and_counted_and_the_stream_goes_on()
    {
        await using var pipeline = await Pipeline.StartAsync();
        using var aggregator = pipeline.StartAggregator();
        var metrics = new CollectorMetrics();
        using var publisher = pipeline.CreatePublisher(metrics);
        var prefix = "garbage-" + Guid.NewGuid().ToString("N")[..8];
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
        for (var i = 0; i < 10; i++) publisher.Publish(Pipeline.SyntheticSample(prefix, (ulong)i + 1, t0 + (i * 1_000_000L)));
        publisher.Flush(TimeSpan.FromSeconds(10));

        using (var raw = new ProducerBuilder<string, byte[]>(pipeline.KafkaOptions.CreateProducerConfig()).Build())
        {
            // Not protobuf at all (a wire type 7 field), then valid protobuf of the wrong shape (no body).
            await raw.ProduceAsync(ApmTopics.Samples, new Message<string, byte[]> { Key = prefix, Value = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00] });
            await raw.ProduceAsync(ApmTopics.Samples, new Message<string, byte[]> { Key = prefix, Value = [] });
        }

        for (var i = 10; i < 20; i++) publisher.Publish(Pipeline.SyntheticSample(prefix, (ulong)i + 1, t0 + (i * 1_000_000L)));
        publisher.Flush(TimeSpan.FromSeconds(10));

        Assert.True(await Pipeline.EventuallyAsync(async () => await pipeline.CountAsync(PointsPerSample, prefix) == 20, TimeSpan.FromSeconds(30)));
        Assert.True(await Pipeline.EventuallyAsync(() => Task.FromResult(aggregator.Metrics.DeadLettered == 2), TimeSpan.FromSeconds(10)));

        using var dlq = new ConsumerBuilder<string, byte[]>(pipeline.KafkaOptions.CreateConsumerConfig("dlq-reader-" + prefix)).Build();
        dlq.Subscribe(ApmTopics.DeadLetter);
        var reasons = new List<string>();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (reasons.Count < 2 && DateTime.UtcNow < deadline)
        {
            var r = dlq.Consume(TimeSpan.FromMilliseconds(500));
            if (r?.Message?.Headers != null && r.Message.Headers.TryGetLastBytes("apm-error", out var e)) reasons.Add(System.Text.Encoding.UTF8.GetString(e));
        }

        dlq.Close();
        Assert.Equal(2, reasons.Count);
        Assert.StartsWith("undecodable", reasons[0], StringComparison.Ordinal);
        Assert.Equal("invalid: message has no body", reasons[1]);
    }
}
