namespace Apm.Aggregator;

/// <summary>Counters of one aggregator instance.</summary>
public sealed class AggregatorMetrics
{
    private long _consumed;
    private long _points;
    private long _batches;
    private long _deadLettered;
    private long _writeFailures;
    private long _commits;
    private long _sequenceGaps;

    public long MessagesConsumed => Interlocked.Read(ref _consumed);

    /// <summary>Points acknowledged by InfluxDB (replays count again: InfluxDB overwrites identical points).</summary>
    public long PointsWritten => Interlocked.Read(ref _points);

    public long BatchesWritten => Interlocked.Read(ref _batches);

    /// <summary>Undecodable messages moved to the dead-letter topic.</summary>
    public long DeadLettered => Interlocked.Read(ref _deadLettered);

    /// <summary>Batch writes that failed and were retried.</summary>
    public long WriteFailures => Interlocked.Read(ref _writeFailures);

    public long OffsetCommits => Interlocked.Read(ref _commits);

    /// <summary>Samples whose sequence number skipped ahead of the previous one (samples lost before Kafka).</summary>
    public long SequenceGaps => Interlocked.Read(ref _sequenceGaps);

    /// <summary>Partitions this instance owns now.</summary>
    public int AssignedPartitions { get; internal set; }

    internal void Consumed() => Interlocked.Increment(ref _consumed);

    internal void Written(int points)
    {
        Interlocked.Add(ref _points, points);
        Interlocked.Increment(ref _batches);
    }

    internal void DeadLetter() => Interlocked.Increment(ref _deadLettered);

    internal void WriteFailed() => Interlocked.Increment(ref _writeFailures);

    internal void Committed() => Interlocked.Increment(ref _commits);

    internal void SequenceGap() => Interlocked.Increment(ref _sequenceGaps);
}
