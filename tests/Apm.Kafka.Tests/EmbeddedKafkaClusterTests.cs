using System.Diagnostics;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Xunit.Abstractions;

namespace Apm.Kafka.Tests;

public sealed class EmbeddedKafkaClusterTests(ITestOutputHelper output)
{
    [Fact]
    public void The_cluster_runs_on_librdkafka_2_and_every_broker_listens_on_127_0_0_1_only()
    {
        using var cluster = EmbeddedKafkaCluster.Start(brokers: 3, new TestLogger(output));
        output.WriteLine($"librdkafka {EmbeddedKafkaCluster.LibrdkafkaVersion}, bootstrap {cluster.BootstrapServers}");
        Assert.StartsWith("2.", EmbeddedKafkaCluster.LibrdkafkaVersion, StringComparison.Ordinal);

        var endpoints = cluster.BootstrapServers.Split(',');
        Assert.Equal(3, endpoints.Length);
        var ports = endpoints.Select(e => int.Parse(e[(e.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture)).ToHashSet();
        Assert.Equal(3, ports.Count);
        Assert.All(endpoints, e => Assert.StartsWith("127.0.0.1:", e, StringComparison.Ordinal));

        // The kernel's view: each port has exactly one listening socket, bound to 127.0.0.1 (not 0.0.0.0 or ::).
        var listeners = ListeningSockets("/proc/net/tcp").Concat(ListeningSockets("/proc/net/tcp6"))
            .Where(l => ports.Contains(l.Port)).ToList();
        Assert.Equal(3, listeners.Count);
        Assert.All(listeners, l => Assert.Equal("0100007F", l.Address));
    }

    [Fact]
    public void A_keyed_round_trip_keeps_each_key_in_one_partition_and_in_order()
    {
        using var cluster = EmbeddedKafkaCluster.Start(brokers: 1, new TestLogger(output));
        const string topic = "roundtrip";
        cluster.CreateTopic(topic, partitions: 3);
        var options = Kafka.Options(cluster);

        var sent = new List<(string Key, string Value)>();
        for (var i = 0; i < 300; i++)
        {
            sent.Add(($"jvm-{i % 7}", $"sample {i}"));
        }

        using (var producer = new ProducerBuilder<string, byte[]>(options.CreateProducerConfig("test-producer")).Build())
        {
            var failed = Kafka.ProduceAll(producer, topic, sent.Select(s => new Message<string, byte[]> { Key = s.Key, Value = Encoding.UTF8.GetBytes(s.Value) }));
            Assert.Equal(0, failed);
        }

        var received = Kafka.ReadAll(cluster, topic, partitions: 3);
        Assert.Equal(sent.Count, received.Count);
        foreach (var group in received.GroupBy(r => r.Message.Key))
        {
            Assert.Single(group.Select(r => r.Partition.Value).Distinct());
            var values = group.OrderBy(r => r.Offset.Value).Select(r => Encoding.UTF8.GetString(r.Message.Value)).ToList();
            Assert.Equal(sent.Where(s => s.Key == group.Key).Select(s => s.Value), values);
        }

        // Seven keys over three partitions: the default partitioner (murmur2-compatible consistent_random) uses more than one.
        Assert.True(received.Select(r => r.Partition.Value).Distinct().Count() > 1);
    }

    [Theory]
    [InlineData(CompressionType.None)]
    [InlineData(CompressionType.Gzip)]
    [InlineData(CompressionType.Snappy)]
    [InlineData(CompressionType.Lz4)]
    [InlineData(CompressionType.Zstd)]
    public void Every_compression_codec_round_trips_through_the_embedded_cluster(CompressionType codec)
    {
        using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("codec", partitions: 1);
        var config = Kafka.Options(cluster).CreateProducerConfig();
        config.CompressionType = codec;
        var payload = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("heap used 123456789 ", 50)));
        using (var producer = new ProducerBuilder<string, byte[]>(config).Build())
        {
            Assert.Equal(0, Kafka.ProduceAll(producer, "codec", Enumerable.Range(0, 100).Select(i => new Message<string, byte[]> { Key = $"k{i}", Value = payload })));
        }

        var received = Kafka.ReadAll(cluster, "codec", partitions: 1);
        Assert.Equal(100, received.Count);
        Assert.All(received, r => Assert.Equal(payload, r.Message.Value));
    }

    [Fact]
    public void Bad_arguments_fail_with_a_reason_instead_of_reaching_native_code()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => EmbeddedKafkaCluster.Start(brokers: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => EmbeddedKafkaCluster.Start(brokers: EmbeddedKafkaCluster.MaxBrokers + 1));

        using var cluster = EmbeddedKafkaCluster.Start(brokers: 2);
        Assert.Throws<ArgumentException>(() => cluster.CreateTopic("", 1));
        Assert.Throws<ArgumentException>(() => cluster.CreateTopic("bad name", 1));
        Assert.Throws<ArgumentException>(() => cluster.CreateTopic("bad\0name", 1));
        Assert.Throws<ArgumentException>(() => cluster.CreateTopic(new string('a', TopicNames.MaxLength + 1), 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => cluster.CreateTopic("t", 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => cluster.CreateTopic("t", 1, replicationFactor: 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => cluster.SetBrokerDown(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => cluster.SetBrokerUp(3));
        Assert.Throws<ArgumentOutOfRangeException>(() => cluster.SetBrokerRtt(1, TimeSpan.FromMilliseconds(-1)));

        cluster.CreateTopic("t", 2, replicationFactor: 2);
        var duplicate = Assert.Throws<KafkaMockException>(() => cluster.CreateTopic("t", 2));
        Assert.Equal(ErrorCode.TopicAlreadyExists, duplicate.ErrorCode);
        Assert.False(cluster.TryCreateTopic("t", 2));
        Assert.True(cluster.TryCreateTopic("u", 2));
    }

    [Fact]
    public void A_disposed_cluster_refuses_calls_and_its_brokers_stop_listening()
    {
        var cluster = EmbeddedKafkaCluster.Start();
        var port = int.Parse(cluster.BootstrapServers.Split(':')[1], CultureInfo.InvariantCulture);
        cluster.Dispose();
        cluster.Dispose(); // idempotent

        Assert.Throws<ObjectDisposedException>(() => cluster.CreateTopic("t", 1));
        Assert.Throws<ObjectDisposedException>(() => cluster.SetBrokerDown(1));
        Assert.DoesNotContain(ListeningSockets("/proc/net/tcp"), l => l.Port == port);
    }

    [Fact]
    public async Task Broker_rtt_delays_every_response_until_it_is_reset()
    {
        using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("rtt", 1);
        var config = Kafka.Options(cluster).CreateProducerConfig();
        config.LingerMs = 0;
        using var producer = new ProducerBuilder<string, byte[]>(config).Build();
        await producer.ProduceAsync("rtt", new Message<string, byte[]> { Key = "warm", Value = [1] });

        cluster.SetBrokerRtt(1, TimeSpan.FromMilliseconds(400));
        var delayed = Stopwatch.StartNew();
        await producer.ProduceAsync("rtt", new Message<string, byte[]> { Key = "slow", Value = [2] });
        delayed.Stop();

        cluster.SetBrokerRtt(1, TimeSpan.Zero);
        await producer.ProduceAsync("rtt", new Message<string, byte[]> { Key = "again", Value = [3] });
        output.WriteLine($"produce with 400 ms rtt took {delayed.ElapsedMilliseconds} ms");
        // A lower bound only: the delay is injected, so it cannot be shorter however fast the machine is.
        Assert.True(delayed.ElapsedMilliseconds >= 390, $"took {delayed.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void Librdkafka_log_lines_reach_the_logger()
    {
        var logger = new TestLogger(output, Microsoft.Extensions.Logging.LogLevel.Debug);
        using (var cluster = EmbeddedKafkaCluster.Start(1, logger))
        {
            cluster.SetBrokerDown(1);
            cluster.SetBrokerUp(1);
        }

        Assert.Contains(logger.Lines, l => l.Contains("started", StringComparison.Ordinal));
        Assert.Contains(logger.Lines, l => l.Contains("broker 1 set down", StringComparison.OrdinalIgnoreCase));
        Assert.Contains(logger.Lines, l => l.Contains("stopped", StringComparison.Ordinal));
        // A line that librdkafka logged itself, through the native log callback (downgraded to Debug: expected noise).
        Assert.Contains(logger.Lines, l => l.StartsWith("Debug: librdkafka CONFWARN", StringComparison.Ordinal));
        foreach (var line in logger.Lines.Where(l => l.Contains("librdkafka", StringComparison.Ordinal)))
        {
            output.WriteLine("native: " + line);
        }
    }

    internal readonly record struct Listener(string Address, int Port);

    /// <summary>Sockets in state LISTEN (0A) from /proc/net/tcp{,6}: "local_address" is hex address:port.</summary>
    internal static IEnumerable<Listener> ListeningSockets(string path)
    {
        if (!File.Exists(path))
        {
            yield break;
        }

        foreach (var line in File.ReadLines(path).Skip(1))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 4 || fields[3] != "0A")
            {
                continue;
            }

            var local = fields[1].Split(':');
            yield return new Listener(local[0], int.Parse(local[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture));
        }
    }
}
