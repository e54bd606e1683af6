using Apm.Protocol.V1;
using Confluent.Kafka;

namespace Apm.Aggregator.Reports;

/// <summary>What <see cref="ReportAssembler.Add"/> made of a chunk.</summary>
public enum ChunkOutcome
{
    /// <summary>Kept; the report still misses chunks.</summary>
    Pending,

    /// <summary>The report's last missing chunk: <see cref="ReportAssembler.ChunksOf"/> has them all.</summary>
    Complete,

    /// <summary>An identical copy of a chunk already held (a redelivery): ignored.</summary>
    Duplicate,

    /// <summary>Differs from a chunk already held under the same index, or from the report's chunk count: the report is refused.</summary>
    Conflict,

    /// <summary>A chunk of a report refused earlier: ignored.</summary>
    Refused,
}

/// <summary>
/// Puts report chunks back together and says which offsets of the reports topic are safe to commit. Reports may
/// arrive interleaved on one partition, chunks may arrive twice (a redelivery after a rebalance), and a whole report
/// may fail to be stored (the disk): so an offset is committed only below the first chunk of the oldest report that
/// is not yet stored, and a report that is complete but not stored is kept and retried with a growing delay. Held
/// bytes are bounded: beyond the limit the oldest incomplete report is dropped, then (only when nothing else is
/// left) the oldest unstored complete one, whose first offset stays uncommitted and is read again later
/// (<see cref="Rewinds"/> says where to seek). Not thread-safe: the consumer's thread owns it.
/// </summary>
public sealed class ReportAssembler(long maxPendingBytes, TimeSpan maxPendingAge)
{
    /// <summary>Longest delay between two attempts to store a report.</summary>
    public static readonly TimeSpan MaxRetryDelay = TimeSpan.FromMinutes(1);

    private const int RefusedMemory = 1_000;

    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly Dictionary<TopicPartition, long> _next = [];
    private readonly Dictionary<TopicPartition, long> _committed = [];
    private readonly Dictionary<TopicPartition, Hole> _holes = [];
    private readonly HashSet<string> _refused = new(StringComparer.Ordinal);
    private readonly Queue<string> _refusedOrder = new();

    /// <summary>Bytes of chunk payloads held.</summary>
    public long PendingBytes { get; private set; }

    /// <summary>Reports held (incomplete, or complete and not yet stored).</summary>
    public int PendingReports => _entries.Count;

    /// <summary>Whether chunks of report <paramref name="id"/> are held.</summary>
    public bool Holds(string id) => _entries.ContainsKey(id);

    /// <summary>
    /// Adds the chunk read at <paramref name="at"/> (validated by the caller: report id, count, index in range). On
    /// <see cref="ChunkOutcome.Conflict"/>, <paramref name="reason"/> says what differs and the report is dropped.
    /// </summary>
    public ChunkOutcome Add(TriageReportChunk chunk, TopicPartitionOffset at, DateTime now, out string? reason)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        ArgumentNullException.ThrowIfNull(at);
        reason = null;
        var id = chunk.ReportId;
        try
        {
            if (_refused.Contains(id)) return ChunkOutcome.Refused;
            if (!_entries.TryGetValue(id, out var e))
            {
                e = new Entry(id, chunk.ChunkCount, now);
                _entries[id] = e;
            }

            e.Touch(at);
            if (chunk.ChunkCount != e.Chunks.Length)
            {
                reason = $"chunk {chunk.ChunkIndex} says {chunk.ChunkCount} chunks, an earlier one said {e.Chunks.Length}";
                Refuse(e);
                return ChunkOutcome.Conflict;
            }

            if (e.Chunks[chunk.ChunkIndex] is { } held)
            {
                if (held.Equals(chunk)) return ChunkOutcome.Duplicate;
                reason = $"chunk {chunk.ChunkIndex} arrived twice with different content";
                Refuse(e);
                return ChunkOutcome.Conflict;
            }

            e.Chunks[chunk.ChunkIndex] = chunk;
            e.Received++;
            e.Bytes += chunk.Payload.Length;
            PendingBytes += chunk.Payload.Length;
            return e.Received == e.Chunks.Length ? ChunkOutcome.Complete : ChunkOutcome.Pending;
        }
        finally
        {
            Seen(at);
        }
    }

    /// <summary>Notes a message that belongs to no held report (undecodable, already stored, ...): offsets may pass it.</summary>
    public void Seen(TopicPartitionOffset at)
    {
        ArgumentNullException.ThrowIfNull(at);
        var tp = at.TopicPartition;
        var next = at.Offset.Value + 1;
        if (!_next.TryGetValue(tp, out var n) || next > n) _next[tp] = next;
        // A hole being read again closes once the re-read reaches it (its report is held again, or was stored).
        if (_holes.TryGetValue(tp, out var hole) && hole.Rewound && at.Offset.Value >= hole.Offset) _holes.Remove(tp);
    }

    /// <summary>The chunks of a complete report, in index order.</summary>
    public IReadOnlyList<TriageReportChunk> ChunksOf(string id) => Array.ConvertAll(_entries[id].Chunks, c => c ?? throw new InvalidOperationException($"report {id} is not complete"));

    /// <summary>The report is stored: drop it; its offsets may be committed.</summary>
    public void Stored(string id) => Remove(id);

    /// <summary>
    /// Where to seek back to read again the reports dropped from memory while the store failed: every such place when
    /// <paramref name="storeWorks"/> (a report was just stored), else those dropped at least <see cref="MaxRetryDelay"/>
    /// ago. Empty usually.
    /// </summary>
    public IReadOnlyList<TopicPartitionOffset> Rewinds(DateTime now, bool storeWorks)
    {
        List<TopicPartitionOffset>? rewind = null;
        foreach (var (tp, hole) in _holes)
        {
            if (hole.Rewound || (!storeWorks && now < hole.Since + MaxRetryDelay)) continue;
            hole.Rewound = true;
            (rewind ??= []).Add(new TopicPartitionOffset(tp, hole.Offset));
        }

        return rewind ?? (IReadOnlyList<TopicPartitionOffset>)[];
    }

    /// <summary>The report cannot be used (it failed its checks): drop it; its offsets may be committed.</summary>
    public void Rejected(string id)
    {
        if (_entries.TryGetValue(id, out var e)) Refuse(e);
    }

    /// <summary>Storing the complete report failed: keep it and retry after a delay that doubles per failure (at most <see cref="MaxRetryDelay"/>).</summary>
    public TimeSpan StoreFailed(string id, DateTime now)
    {
        var e = _entries[id];
        e.Failures++;
        var delay = TimeSpan.FromSeconds(Math.Min(MaxRetryDelay.TotalSeconds, Math.Pow(2, Math.Min(e.Failures - 1, 16))));
        e.RetryAt = now + delay;
        return delay;
    }

    /// <summary>Complete reports whose retry is due.</summary>
    public IReadOnlyList<string> DueForRetry(DateTime now) =>
        _entries.Values.Where(e => e.RetryAt is { } t && t <= now).Select(e => e.Id).ToList();

    /// <summary>
    /// Drops incomplete reports older than the age limit, and reports beyond the memory limit (oldest incomplete first,
    /// then the oldest complete one not stored). Returns each dropped report with the reason.
    /// </summary>
    public IReadOnlyList<(string Id, string Reason)> Evict(DateTime now)
    {
        var dropped = new List<(string, string)>();
        foreach (var e in _entries.Values.Where(e => !e.IsComplete && now - e.Since > maxPendingAge).ToList())
        {
            Remove(e.Id);
            dropped.Add((e.Id, $"incomplete ({e.Received} of {e.Chunks.Length} chunks) for longer than {maxPendingAge}"));
        }

        while (PendingBytes > maxPendingBytes && _entries.Count > 0)
        {
            var e = _entries.Values.Where(x => !x.IsComplete).MinBy(x => x.Since);
            if (e is not null)
            {
                Remove(e.Id);
                dropped.Add((e.Id, $"incomplete reports passed the memory limit of {maxPendingBytes} bytes"));
                continue;
            }

            // Only reports the store did not take are left: drop the oldest from memory, but not from the topic.
            e = _entries.Values.MinBy(x => x.Since)!;
            foreach (var (tp, first) in e.First)
            {
                if (!_holes.TryGetValue(tp, out var hole) || first < hole.Offset) _holes[tp] = new Hole(first, now);
            }

            Remove(e.Id);
            dropped.Add((e.Id, $"not stored yet and the memory limit of {maxPendingBytes} bytes was passed: it is read again from the topic once the store works"));
        }

        return dropped;
    }

    /// <summary>
    /// The offsets that became safe to commit since the last call, for <paramref name="only"/> those partitions when
    /// given: per partition, the first chunk of the oldest report still held (or a dropped report to read again), else
    /// the next offset after everything seen.
    /// </summary>
    public IReadOnlyList<TopicPartitionOffset> CommitOffsets(IReadOnlyCollection<TopicPartition>? only = null)
    {
        var list = new List<TopicPartitionOffset>();
        foreach (var (tp, next) in _next)
        {
            if (only is not null && !only.Contains(tp)) continue;
            var floor = next;
            if (_holes.TryGetValue(tp, out var hole)) floor = Math.Min(floor, hole.Offset);
            foreach (var e in _entries.Values)
            {
                if (e.First.TryGetValue(tp, out var first)) floor = Math.Min(floor, first);
            }

            if (_committed.TryGetValue(tp, out var done) && floor <= done) continue;
            _committed[tp] = floor;
            list.Add(new TopicPartitionOffset(tp, floor));
        }

        return list;
    }

    /// <summary>
    /// The partitions are no longer this consumer's: forget their reports and offsets (the next owner reads them again
    /// from the committed offset, which is below every report held here).
    /// </summary>
    public void Revoke(IEnumerable<TopicPartition> partitions)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        var set = partitions.ToHashSet();
        foreach (var e in _entries.Values.Where(e => e.First.Keys.Any(set.Contains)).ToList()) Remove(e.Id);
        foreach (var tp in set)
        {
            _next.Remove(tp);
            _committed.Remove(tp);
            _holes.Remove(tp);
        }
    }

    private void Refuse(Entry e)
    {
        Remove(e.Id);
        if (_refused.Add(e.Id)) _refusedOrder.Enqueue(e.Id);
        while (_refusedOrder.Count > RefusedMemory) _refused.Remove(_refusedOrder.Dequeue());
    }

    private void Remove(string id)
    {
        if (_entries.Remove(id, out var e)) PendingBytes -= e.Bytes;
    }

    private sealed class Entry(string id, int count, DateTime since)
    {
        public string Id { get; } = id;

        public DateTime Since { get; } = since;

        public TriageReportChunk?[] Chunks { get; } = new TriageReportChunk?[count];

        /// <summary>The lowest offset of this report's chunks per partition (chunks are keyed by report id: one partition, normally).</summary>
        public Dictionary<TopicPartition, long> First { get; } = [];

        public int Received { get; set; }

        public long Bytes { get; set; }

        public int Failures { get; set; }

        public DateTime? RetryAt { get; set; }

        public bool IsComplete => Received == Chunks.Length;

        public void Touch(TopicPartitionOffset at)
        {
            if (!First.TryGetValue(at.TopicPartition, out var f) || at.Offset.Value < f) First[at.TopicPartition] = at.Offset.Value;
        }
    }

    private sealed class Hole(long offset, DateTime since)
    {
        public long Offset { get; } = offset;

        public DateTime Since { get; } = since;

        /// <summary>Whether the consumer was sent back to it.</summary>
        public bool Rewound { get; set; }
    }
}
