using System.Buffers.Binary;
using System.Diagnostics;
using Confluent.Kafka;
using Xunit.Abstractions;

namespace Apm.Kafka.Tests;

/// <summary>An outage shorter than the members' 6 s session timeout: the group keeps its members.</summary>
public sealed class ShortBrokerOutageTests(ITestOutputHelper output)
{
    [Fact]
    public void A_2_s_outage_of_a_leader_and_coordinator_loses_nothing_and_the_log_has_no_duplicates() =>
        BrokerOutage.Run(output, outageSeconds: 2);
}

/// <summary>
/// An outage longer than the session timeout: the coordinator forgets the members, the group rebalances and
/// replays from the last committed offsets. A separate class so that xunit runs it beside the short one.
/// </summary>
public sealed class LongBrokerOutageTests(ITestOutputHelper output)
{
    [Fact]
    public void An_8_s_outage_loses_nothing_the_log_has_no_duplicates_and_the_group_replays_some_messages() =>
        BrokerOutage.Run(output, outageSeconds: 8);
}

/// <summary>
/// Producer and consumer group through a broker outage: an idempotent producer's messages all arrive exactly
/// once in the log; the group sees every id at least once and its duplicates are counted and reported.
/// </summary>
internal static class BrokerOutage
{
    private const int Count = 30_000;

    public static void Run(ITestOutputHelper output, int outageSeconds)
    {
        using var cluster = EmbeddedKafkaCluster.Start(brokers: 3, new TestLogger(output, Microsoft.Extensions.Logging.LogLevel.Warning));
        const string topic = "faults";
        cluster.CreateTopic(topic, partitions: 6, replicationFactor: 3);
        var options = Kafka.Options(cluster);
        // Broker 2 is also the group's coordinator, the worst case for the consumers: heartbeats and commits fail too.
        cluster.SetGroupCoordinator("faults-group", 2);

        var clock = Stopwatch.StartNew();
        using var a = new GroupMember(options, "faults-group", topic, "a");
        using var b = new GroupMember(options, "faults-group", topic, "b");
        Kafka.WaitUntil(() => a.Partitions.Count + b.Partitions.Count == 6, "the group to assign all partitions");

        output.WriteLine($"{clock.ElapsedMilliseconds} ms: group assigned");
        var failed = 0;
        using (var producer = new ProducerBuilder<string, byte[]>(options.CreateProducerConfig("faults-producer")).Build())
        {
            failed += Kafka.ProduceAll(producer, topic, Messages(0, Count / 3));

            // Broker 2 leads a third of the partitions; its connections drop while messages keep coming.
            cluster.SetBrokerDown(2);
            var down = Stopwatch.StartNew();
            foreach (var message in Messages(Count / 3, 2 * Count / 3))
            {
                producer.Produce(topic, message, r =>
                {
                    if (r.Error.IsError)
                    {
                        Interlocked.Increment(ref failed);
                    }
                });
            }

            // Long enough for every client to notice the broker is gone (they retry with backoff).
            Thread.Sleep(TimeSpan.FromSeconds(outageSeconds) - down.Elapsed);
            cluster.SetBrokerUp(2);
            failed += Kafka.ProduceAll(producer, topic, Messages(2 * Count / 3, Count));
        }

        output.WriteLine($"{clock.ElapsedMilliseconds} ms: all {Count} delivered");
        Assert.Equal(0, failed);

        // The log itself: every id exactly once. The idempotent producer's retries were deduplicated by sequence number.
        var log = Kafka.ReadAll(cluster, topic, partitions: 6);
        var logIds = log.Select(r => Id(r.Message.Value)).ToList();
        output.WriteLine($"{clock.ElapsedMilliseconds} ms: log: {logIds.Count} records, {logIds.Distinct().Count()} distinct ids");
        Assert.Equal(Count, logIds.Distinct().Count());
        Assert.Equal(Count, logIds.Count);
        Assert.All(logIds, id => Assert.InRange(id, 0, Count - 1));

        // Each key's ids stay in production order within its partition (no reordering by retries).
        foreach (var key in log.GroupBy(r => r.Message.Key))
        {
            var ids = key.OrderBy(r => r.Offset.Value).Select(r => Id(r.Message.Value)).ToList();
            Assert.Equal(ids.Order(), ids);
        }

        // The consumer group: at-least-once, so every id at least once; duplicates are counted, not forbidden.
        Kafka.WaitUntil(() => GroupIds(a, b).Distinct().Count() == Count, "the group to see every id");
        // Redeliveries can trail the last new id: count once the deliveries have been stable for a second.
        var stable = GroupIds(a, b).Count;
        Kafka.WaitUntil(() => { Thread.Sleep(1000); var now = GroupIds(a, b).Count; (stable, var before) = (now, stable); return now == before; }, "deliveries to settle");
        var seen = GroupIds(a, b);
        var duplicates = seen.Count - seen.Distinct().Count();
        output.WriteLine($"{clock.ElapsedMilliseconds} ms: outage {outageSeconds} s, group: {seen.Count} deliveries (a {a.Received.Count}, b {b.Received.Count}), {seen.Distinct().Count()} distinct, {duplicates} duplicates");
        Assert.Equal(Count, seen.Distinct().Count());
        Assert.Null(a.Failure);
        Assert.Null(b.Failure);
        a.Close();
        b.Close();
        output.WriteLine($"{clock.ElapsedMilliseconds} ms: closed; Close() took {a.CloseTime.TotalMilliseconds:F0} ms and {b.CloseTime.TotalMilliseconds:F0} ms");
    }

    private static IEnumerable<Message<string, byte[]>> Messages(int from, int to)
    {
        for (var id = from; id < to; id++)
        {
            var value = new byte[64];
            BinaryPrimitives.WriteInt32BigEndian(value, id);
            yield return new Message<string, byte[]> { Key = $"jvm-{id % 50}", Value = value };
        }
    }

    /// <summary>Snapshots first: the members keep enqueueing while this runs.</summary>
    private static List<int> GroupIds(GroupMember a, GroupMember b) =>
        a.Received.ToArray().Concat(b.Received.ToArray()).Select(r => Id(r.Message.Value)).ToList();

    private static int Id(byte[] value) => BinaryPrimitives.ReadInt32BigEndian(value);
}
