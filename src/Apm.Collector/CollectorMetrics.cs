namespace Apm.Collector;

/// <summary>Counters of one collector; every drop is counted here (nothing is lost silently).</summary>
public sealed class CollectorMetrics
{
    private long _samplesRead;
    private long _samplesPublished;
    private long _samplesDropped;
    private long _deliveryFailures;
    private long _unreadable;
    private long _jvmsDiscovered;
    private long _jvmsGone;

    public long SamplesRead => Interlocked.Read(ref _samplesRead);

    /// <summary>Messages the broker acknowledged.</summary>
    public long SamplesPublished => Interlocked.Read(ref _samplesPublished);

    /// <summary>Messages refused because the local buffer was full (Kafka unreachable for long).</summary>
    public long SamplesDropped => Interlocked.Read(ref _samplesDropped);

    /// <summary>Messages whose delivery finally failed (timeout or fatal producer error).</summary>
    public long DeliveryFailures => Interlocked.Read(ref _deliveryFailures);

    /// <summary>Readings that failed because a JVM's hsperfdata file was corrupt or unreadable.</summary>
    public long UnreadableReadings => Interlocked.Read(ref _unreadable);

    public long JvmsDiscovered => Interlocked.Read(ref _jvmsDiscovered);

    public long JvmsGone => Interlocked.Read(ref _jvmsGone);

    /// <summary>JVMs being watched right now.</summary>
    public int JvmsWatched { get; internal set; }

    internal void SampleRead() => Interlocked.Increment(ref _samplesRead);

    internal void Published() => Interlocked.Increment(ref _samplesPublished);

    internal void Dropped() => Interlocked.Increment(ref _samplesDropped);

    internal void DeliveryFailed() => Interlocked.Increment(ref _deliveryFailures);

    internal void Unreadable() => Interlocked.Increment(ref _unreadable);

    internal void Discovered() => Interlocked.Increment(ref _jvmsDiscovered);

    internal void Gone() => Interlocked.Increment(ref _jvmsGone);
}
