using Apm.Aggregator.Reports;
using Apm.Protocol.V1;
using Apm.Reports;
using Confluent.Kafka;

namespace Apm.Aggregator.Tests;

public sealed class ReportAssemblerTests
{
    private static readonly TopicPartition P0 = new("apm.reports.v1", 0);
    private static readonly TopicPartition P1 = new("apm.reports.v1", 1);
    private static readonly DateTime T0 = new(2026, 11, 21, 10, 0, 0, DateTimeKind.Utc);

    /// <summary>A report of random (incompressible) bytes split into <paramref name="chunks"/> chunks of 1 KiB.</summary>
    private static List<TriageReportChunk> Report(string id, int chunks, int seed = 1)
    {
        var html = new byte[(chunks - 1) * 1024 + 200];
        new Random(seed).NextBytes(html);
        var meta = new ReportMeta(id, "h:1:1", "h", "com.acme.Main", DateTimeOffset.FromUnixTimeMilliseconds(1_790_000_000_000), "cli", "", "c", "finding", 1);
        var list = ReportChunks.Split(new ReportContent(meta, "{}"u8.ToArray(), html), new JvmIdentity { JvmId = "h:1:1", Host = "h" }, chunkBytes: 1024).ToList();
        Assert.Equal(chunks, list.Count);
        return list;
    }

    private static string Id(char c) => new(c, 32);

    private static TopicPartitionOffset At(TopicPartition tp, long offset) => new(tp, offset);

    private static ChunkOutcome Add(ReportAssembler a, TriageReportChunk chunk, TopicPartition tp, long offset, DateTime? now = null) =>
        a.Add(chunk, At(tp, offset), now ?? T0, out _);

    private static ReportAssembler New(long maxBytes = 1 << 30) => new(maxBytes, TimeSpan.FromMinutes(10));

    [Fact]
    public void Interleaved_reports_on_one_partition_hold_the_commit_below_the_first_chunk_of_the_oldest_incomplete_one()
    {
        var a = New();
        var x = Report(Id('a'), 3);
        var y = Report(Id('b'), 2, seed: 2);

        // Offsets: 10 x0, 11 y0, 12 y1 (y complete), 13 x1, 14 x2 (x complete).
        Assert.Equal(ChunkOutcome.Pending, Add(a, x[0], P0, 10));
        Assert.Equal(ChunkOutcome.Pending, Add(a, y[0], P0, 11));
        Assert.Equal(ChunkOutcome.Complete, Add(a, y[1], P0, 12));
        a.Stored(Id('b'));

        // y is stored, but x began before it: committing 13 would skip x's first chunk after a restart.
        Assert.Equal([At(P0, 10)], a.CommitOffsets());

        Assert.Equal(ChunkOutcome.Pending, Add(a, x[1], P0, 13));
        Assert.Empty(a.CommitOffsets()); // nothing new is safe
        Assert.Equal(ChunkOutcome.Complete, Add(a, x[2], P0, 14));
        Assert.Equal(x.Select(c => c.ChunkIndex), a.ChunksOf(Id('a')).Select(c => c.ChunkIndex));
        a.Stored(Id('a'));
        Assert.Equal([At(P0, 15)], a.CommitOffsets());
        Assert.Equal(0, a.PendingBytes);
    }

    [Fact]
    public void Partitions_are_committed_independently_and_messages_of_no_report_let_the_offset_pass()
    {
        var a = New();
        var x = Report(Id('a'), 2);
        Add(a, x[0], P0, 5);
        a.Seen(At(P1, 40)); // an undecodable message on another partition
        Assert.Equal([At(P0, 5), At(P1, 41)], a.CommitOffsets().OrderBy(o => o.Partition.Value));
    }

    [Fact]
    public void An_identical_redelivered_chunk_is_ignored_and_the_report_still_completes()
    {
        var a = New();
        var x = Report(Id('a'), 3);
        Add(a, x[0], P0, 0);
        Add(a, x[1], P0, 1);
        var bytes = a.PendingBytes;

        // A rebalance delivers the first two again (same content, later offsets).
        Assert.Equal(ChunkOutcome.Duplicate, Add(a, x[0].Clone(), P0, 2));
        Assert.Equal(ChunkOutcome.Duplicate, Add(a, x[1].Clone(), P0, 3));
        Assert.Equal(bytes, a.PendingBytes);
        Assert.Equal(ChunkOutcome.Complete, Add(a, x[2], P0, 4));

        var joined = ReportChunks.Join(a.ChunksOf(Id('a')));
        Assert.Equal(Id('a'), joined.Meta.Id);
    }

    [Fact]
    public void A_conflicting_chunk_refuses_the_report_with_a_reason_and_its_later_chunks_are_ignored()
    {
        var a = New();
        var x = Report(Id('a'), 3);
        Add(a, x[0], P0, 0);
        var altered = x[0].Clone();
        altered.TopFinding = "something else";
        Assert.Equal(ChunkOutcome.Conflict, a.Add(altered, At(P0, 1), T0, out var reason));
        Assert.Contains("chunk 0 arrived twice with different content", reason, StringComparison.Ordinal);
        Assert.False(a.Holds(Id('a')));
        Assert.Equal(ChunkOutcome.Refused, Add(a, x[1], P0, 2));
        Assert.Equal(ChunkOutcome.Refused, Add(a, x[2], P0, 3));
        Assert.Equal([At(P0, 4)], a.CommitOffsets()); // a refused report does not hold the partition back

        var y = Report(Id('b'), 3, seed: 2);
        Add(a, y[0], P0, 5);
        var other = Report(Id('b'), 2, seed: 3)[1];
        Assert.Equal(ChunkOutcome.Conflict, a.Add(other, At(P0, 6), T0, out reason));
        Assert.Contains("says 2 chunks", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_report_the_store_refused_is_kept_and_retried_with_a_growing_delay_and_holds_the_commit()
    {
        var a = New();
        var x = Report(Id('a'), 2);
        Add(a, x[0], P0, 0);
        Assert.Equal(ChunkOutcome.Complete, Add(a, x[1], P0, 1));

        Assert.Equal(TimeSpan.FromSeconds(1), a.StoreFailed(Id('a'), T0));
        Assert.Empty(a.DueForRetry(T0));
        Assert.Equal([Id('a')], a.DueForRetry(T0.AddSeconds(1)));
        Assert.Equal(TimeSpan.FromSeconds(2), a.StoreFailed(Id('a'), T0.AddSeconds(1)));
        Assert.Equal(TimeSpan.FromSeconds(4), a.StoreFailed(Id('a'), T0.AddSeconds(3)));
        for (var i = 0; i < 10; i++) a.StoreFailed(Id('a'), T0);
        Assert.Equal(ReportAssembler.MaxRetryDelay, a.StoreFailed(Id('a'), T0));

        // Not dropped for its age (it is complete), and its offsets stay uncommitted.
        Assert.Empty(a.Evict(T0.AddHours(1)));
        Assert.Equal([At(P0, 0)], a.CommitOffsets());
        a.Stored(Id('a'));
        Assert.Equal([At(P0, 2)], a.CommitOffsets());
    }

    [Fact]
    public void Beyond_the_memory_limit_incomplete_reports_go_first_and_an_unstored_one_is_read_again_from_where_it_began()
    {
        var x = Report(Id('a'), 2);
        var y = Report(Id('b'), 3, seed: 2);
        var limit = x.Sum(c => c.Payload.Length) + 100;
        var a = New(limit);
        Add(a, x[0], P0, 0, T0.AddSeconds(-10));
        Add(a, x[1], P0, 1, T0.AddSeconds(-10));
        a.StoreFailed(Id('a'), T0);
        Add(a, y[0], P0, 2);

        // Over the limit: the incomplete y goes, the complete x (waiting for the store) stays.
        var dropped = a.Evict(T0);
        Assert.Equal(Id('b'), Assert.Single(dropped).Id);
        Assert.True(a.Holds(Id('a')));

        // Another report arrives whole while the store still fails: now only unstored reports are left, the oldest goes...
        var z = Report(Id('c'), 2, seed: 3);
        Add(a, z[0], P0, 3);
        Add(a, z[1], P0, 4);
        a.StoreFailed(Id('c'), T0);
        dropped = a.Evict(T0);
        var (droppedId, droppedReason) = Assert.Single(dropped);
        Assert.Equal(Id('a'), droppedId);
        Assert.Contains("read again", droppedReason, StringComparison.Ordinal);
        // ...but its place in the topic is kept: nothing from offset 0 on is committed.
        Assert.Equal([At(P0, 0)], a.CommitOffsets());
        Assert.Empty(a.Rewinds(T0, storeWorks: false));

        // Once a report is stored, the consumer is sent back to offset 0; the re-read passes the hole and x is held again.
        a.Stored(Id('c'));
        Assert.Equal([At(P0, 0)], a.Rewinds(T0, storeWorks: true));
        Assert.Empty(a.Rewinds(T0, storeWorks: true));
        Assert.Equal(ChunkOutcome.Pending, Add(a, x[0], P0, 0));
        Assert.Empty(a.CommitOffsets());
        Assert.Equal(ChunkOutcome.Complete, Add(a, x[1], P0, 1));
        a.Stored(Id('a'));
        // Then y's first chunk again (held again, incomplete), and z's chunks (stored already: the consumer only notes them).
        Assert.Equal(ChunkOutcome.Pending, Add(a, y[0], P0, 2));
        a.Seen(At(P0, 3));
        a.Seen(At(P0, 4));
        Assert.Equal([At(P0, 2)], a.CommitOffsets());
    }

    [Fact]
    public void Incomplete_reports_older_than_the_age_limit_are_dropped_with_a_reason()
    {
        var a = New();
        Add(a, Report(Id('a'), 3)[0], P0, 0);
        Assert.Empty(a.Evict(T0.AddMinutes(9)));
        var (id, reason) = Assert.Single(a.Evict(T0.AddMinutes(11)));
        Assert.Equal(Id('a'), id);
        Assert.Contains("1 of 3 chunks", reason, StringComparison.Ordinal);
        Assert.Equal(0, a.PendingBytes);
    }

    [Fact]
    public void Revoked_partitions_are_forgotten_with_their_reports()
    {
        var a = New();
        Add(a, Report(Id('a'), 2)[0], P0, 7);
        Add(a, Report(Id('b'), 2, seed: 2)[0], P1, 3);
        Assert.Equal([At(P0, 7)], a.CommitOffsets([P0]));
        a.Revoke([P0]);
        Assert.False(a.Holds(Id('a')));
        Assert.True(a.Holds(Id('b')));
        Assert.Equal([At(P1, 3)], a.CommitOffsets());
    }
}
