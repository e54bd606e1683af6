using System.Text;
using Confluent.Kafka;
using Xunit.Abstractions;

namespace Apm.Kafka.Tests;

public sealed class ConsumerGroupTests(ITestOutputHelper output)
{
    [Fact]
    public void Two_members_split_six_partitions_three_and_three_and_the_survivor_takes_all_six_when_one_leaves()
    {
        using var cluster = EmbeddedKafkaCluster.Start(brokers: 3, new TestLogger(output));
        const string topic = "group-split";
        cluster.CreateTopic(topic, partitions: 6, replicationFactor: 3);
        var options = Kafka.Options(cluster);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var a = new GroupMember(options, "aggregators", topic, "a");
        using var b = new GroupMember(options, "aggregators", topic, "b");
        Kafka.WaitUntil(() => a.Partitions.Count == 3 && b.Partitions.Count == 3, "a 3/3 split");
        Assert.Empty(a.Partitions.Intersect(b.Partitions));
        Assert.Equal(Enumerable.Range(0, 6), a.Partitions.Concat(b.Partitions).Order());
        output.WriteLine($"split after {clock.ElapsedMilliseconds} ms: a [{string.Join(",", a.Partitions)}], b [{string.Join(",", b.Partitions)}]");

        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} closing b");
        b.Close();
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} closed b");
        clock.Restart();
        Kafka.WaitUntil(() => a.Partitions.Count == 6, "a to take over all six partitions");
        output.WriteLine($"takeover after {clock.ElapsedMilliseconds} ms");
        foreach (var line in a.Events.Concat(b.Events))
        {
            output.WriteLine(line);
        }

        // The survivor now consumes from every partition: messages produced after the takeover all reach it.
        using (var producer = new ProducerBuilder<string, byte[]>(options.CreateProducerConfig()).Build())
        {
            var messages = Enumerable.Range(0, 120).Select(i => new Message<string, byte[]> { Key = $"jvm-{i}", Value = Encoding.UTF8.GetBytes($"after-{i}") });
            Assert.Equal(0, Kafka.ProduceAll(producer, topic, messages));
        }

        Kafka.WaitUntil(() => a.Received.ToArray().Count(r => Encoding.UTF8.GetString(r.Message.Value).StartsWith("after-", StringComparison.Ordinal)) == 120, "all 120 messages at a");
        Assert.Equal(6, a.Received.Select(r => r.Partition.Value).Distinct().Count());
        Assert.Empty(b.Received);
        Assert.Null(a.Failure);
    }
}
