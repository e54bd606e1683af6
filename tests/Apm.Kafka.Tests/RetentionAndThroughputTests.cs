using System.Diagnostics;
using Confluent.Kafka;
using Xunit.Abstractions;

namespace Apm.Kafka.Tests;

public sealed class RetentionAndThroughputTests(ITestOutputHelper output)
{
    private const int MiB = 1024 * 1024;
    private const int Count = 100_000;

    [Fact]
    public void Each_partition_of_the_embedded_cluster_retains_about_5_MiB_and_drops_the_oldest_batches_beyond()
    {
        using var cluster = EmbeddedKafkaCluster.Start();
        const string topic = "retention";
        cluster.CreateTopic(topic, partitions: 2);
        var config = Kafka.Options(cluster).CreateProducerConfig();
        config.CompressionType = CompressionType.None; // stored bytes = payload bytes + record overhead
        const int valueSize = 1024;
        const int perPartition = 8 * 1024; // 8 MiB of values per partition, well past the limit
        var random = new Random(42);

        using (var producer = new ProducerBuilder<string, byte[]>(config).Build())
        {
            var messages = new List<Message<string, byte[]>>();
            for (var i = 0; i < perPartition; i++)
            {
                for (var p = 0; p < 2; p++)
                {
                    var value = new byte[valueSize];
                    random.NextBytes(value);
                    messages.Add(new Message<string, byte[]> { Key = $"p{p}", Value = value });
                }
            }

            // Explicit partitions, so each one receives exactly perPartition messages.
            var failed = 0;
            foreach (var (message, index) in messages.Select((m, i) => (m, i)))
            {
                producer.Produce(new TopicPartition(topic, index % 2), message, r =>
                {
                    if (r.Error.IsError)
                    {
                        Interlocked.Increment(ref failed);
                    }
                });
            }

            Assert.Equal(0, producer.Flush(Kafka.Patience));
            Assert.Equal(0, failed);
        }

        var log = Kafka.ReadAll(cluster, topic, partitions: 2);
        using var reader = new ConsumerBuilder<string, byte[]>(new ConsumerConfig { BootstrapServers = cluster.BootstrapServers, GroupId = "watermarks" }).Build();
        for (var p = 0; p < 2; p++)
        {
            var marks = reader.QueryWatermarkOffsets(new TopicPartition(topic, p), Kafka.Patience);
            var retained = log.Where(r => r.Partition.Value == p).ToList();
            var retainedBytes = retained.Sum(r => (long)r.Message.Value.Length + r.Message.Key.Length);
            output.WriteLine(
                $"partition {p}: offsets {marks.Low.Value}..{marks.High.Value}, retained {retained.Count} of {perPartition} messages, " +
                $"{retainedBytes / (double)MiB:F2} MiB of keys and values");

            Assert.Equal(perPartition, marks.High.Value);
            Assert.True(marks.Low.Value > 0, "the oldest messages should have been dropped");
            Assert.Equal(marks.High.Value - marks.Low.Value, retained.Count);
            // The limit counts stored batch bytes (values plus per-record and per-batch overhead) up to 5 MiB,
            // and drops whole batches (up to 1 MB each), so the retained payload lies between 3.5 and 5 MiB.
            Assert.InRange(retainedBytes, 7 * MiB / 2, 5 * MiB);
            // What survives is the newest suffix: contiguous offsets up to the end.
            Assert.Equal(Enumerable.Range((int)marks.Low.Value, retained.Count).Select(o => (long)o), retained.Select(r => r.Offset.Value).Order());
        }
    }

    [Fact]
    public void Producer_throughput_with_the_Apm_settings_is_measured_against_uncompressed_non_idempotent_baseline()
    {
        using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        var value = new byte[200];
        new Random(7).NextBytes(value.AsSpan(0, 100)); // half random, half zeros: a protobuf-like mix
        var options = Kafka.Options(cluster);

        var baseline = options.CreateProducerConfig();
        baseline.EnableIdempotence = false;
        baseline.Acks = Acks.Leader;
        baseline.CompressionType = CompressionType.None;
        var apm = options.CreateProducerConfig();

        // Warm-up (JIT, connections, metadata) so that neither measured run pays for it.
        Measure("warmup", apm, 10_000);
        var baselineRate = Measure("baseline", baseline);
        var apmRate = Measure("apm", apm);
        output.WriteLine($"baseline (acks=1, no compression): {baselineRate:F0} msg/s; Apm settings (idempotent, acks=all, lz4): {apmRate:F0} msg/s; ratio {apmRate / baselineRate:F2}");

        double Measure(string topic, ProducerConfig config, int count = Count)
        {
            cluster.CreateTopic(topic, ApmTopics.DefaultPartitions, replicationFactor: 3);
            using var producer = new ProducerBuilder<string, byte[]>(config).Build();
            var clock = Stopwatch.StartNew();
            var failed = Kafka.ProduceAll(producer, topic, Enumerable.Range(0, count).Select(i => new Message<string, byte[]> { Key = $"jvm-{i % 100}", Value = value }));
            clock.Stop();
            Assert.Equal(0, failed);

            // Every message is in the log, none was dropped by the retention limit.
            using var reader = new ConsumerBuilder<string, byte[]>(new ConsumerConfig { BootstrapServers = cluster.BootstrapServers, GroupId = "marks" }).Build();
            long total = 0;
            for (var p = 0; p < ApmTopics.DefaultPartitions; p++)
            {
                var marks = reader.QueryWatermarkOffsets(new TopicPartition(topic, p), Kafka.Patience);
                Assert.Equal(0, marks.Low.Value);
                total += marks.High.Value;
            }

            Assert.Equal(count, total);
            return count / clock.Elapsed.TotalSeconds;
        }
    }
}
