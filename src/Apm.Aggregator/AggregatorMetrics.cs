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
    private long _alertsFired;
    private long _alertsResolved;
    private long _alertTransitions;
    private long _ruleEvaluations;
    private long _ruleFailures;
    private long _alertMailQueueFailures;
    private long _heapDumpsRequested;
    private long _reportsStored;
    private long _reportsRejected;
    private long _reportStoreFailures;
    private long _reportChunkDuplicates;

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

    /// <summary>Alert transitions (pending, firing, resolved) produced by the rules.</summary>
    public long AlertTransitions => Interlocked.Read(ref _alertTransitions);

    /// <summary>Alerts that fired.</summary>
    public long AlertsFired => Interlocked.Read(ref _alertsFired);

    /// <summary>Alerts that resolved.</summary>
    public long AlertsResolved => Interlocked.Read(ref _alertsResolved);

    /// <summary>Per-JVM rule evaluations (all rules at once).</summary>
    public long RuleEvaluations => Interlocked.Read(ref _ruleEvaluations);

    /// <summary>Rule runs that threw; the rule is skipped for that evaluation.</summary>
    public long RuleFailures => Interlocked.Read(ref _ruleFailures);

    /// <summary>Alert e-mails that could not be written to the outbox (disk full, ...): the alert is stored, the mail is lost.</summary>
    public long AlertMailQueueFailures => Interlocked.Read(ref _alertMailQueueFailures);

    /// <summary>Heap-dump commands sent to collectors because a rule fired.</summary>
    public long HeapDumpsRequested => Interlocked.Read(ref _heapDumpsRequested);

    /// <summary>Triage reports received whole and stored.</summary>
    public long ReportsStored => Interlocked.Read(ref _reportsStored);

    /// <summary>Report chunks or reports that could not be used (corrupt, incomplete, too large).</summary>
    public long ReportsRejected => Interlocked.Read(ref _reportsRejected);

    /// <summary>Attempts to store a whole report that failed (disk full, unwritable); the report is kept and retried.</summary>
    public long ReportStoreFailures => Interlocked.Read(ref _reportStoreFailures);

    /// <summary>Report chunks read again (a redelivery) and ignored: identical to one held, or of a report already stored.</summary>
    public long ReportChunkDuplicates => Interlocked.Read(ref _reportChunkDuplicates);

    /// <summary>Messages behind the end of the owned partitions at the last commit (high watermark minus position).</summary>
    public long ConsumerLag { get; internal set; }

    /// <summary>Points in the last batch written.</summary>
    public long LastBatchPoints { get; internal set; }

    /// <summary>Milliseconds the last batch write took (including retries).</summary>
    public long LastWriteMilliseconds { get; internal set; }

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

    internal void AlertTransition(bool fired, bool resolved)
    {
        Interlocked.Increment(ref _alertTransitions);
        if (fired) Interlocked.Increment(ref _alertsFired);
        if (resolved) Interlocked.Increment(ref _alertsResolved);
    }

    internal void RulesEvaluated(long evaluations, long failures)
    {
        Interlocked.Exchange(ref _ruleEvaluations, evaluations);
        Interlocked.Exchange(ref _ruleFailures, failures);
    }

    internal void HeapDumpRequested() => Interlocked.Increment(ref _heapDumpsRequested);

    internal void ReportStored() => Interlocked.Increment(ref _reportsStored);

    internal void ReportRejected() => Interlocked.Increment(ref _reportsRejected);

    internal void ReportStoreFailed() => Interlocked.Increment(ref _reportStoreFailures);

    internal void ReportChunkDuplicate() => Interlocked.Increment(ref _reportChunkDuplicates);

    internal void AlertMailQueueFailed() => Interlocked.Increment(ref _alertMailQueueFailures);
}
