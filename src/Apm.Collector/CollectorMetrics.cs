using System.Collections.Concurrent;

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

    private readonly ConcurrentDictionary<string, long> _attachFailuresByKind = new(StringComparer.Ordinal);
    private long _finalizerSamples;
    private long _histogramSamples;
    private long _attachFailures;

    /// <summary>GC.finalizer_info answers read and turned into messages.</summary>
    public long FinalizerSamples => Interlocked.Read(ref _finalizerSamples);

    /// <summary>GC.class_histogram answers read and turned into messages.</summary>
    public long HistogramSamples => Interlocked.Read(ref _histogramSamples);

    /// <summary>Attach requests that failed (every failure, not only status changes).</summary>
    public long AttachFailures => Interlocked.Read(ref _attachFailures);

    /// <summary>Failed attach requests by kind (an <see cref="Apm.Jvm.Attach.AttachFailure"/> name or "ParseError").</summary>
    public IReadOnlyDictionary<string, long> AttachFailuresByKind => new Dictionary<string, long>(_attachFailuresByKind, StringComparer.Ordinal);

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

    internal void FinalizerSampled() => Interlocked.Increment(ref _finalizerSamples);

    internal void HistogramSampled() => Interlocked.Increment(ref _histogramSamples);

    internal void AttachFailed(string kind)
    {
        Interlocked.Increment(ref _attachFailures);
        _attachFailuresByKind.AddOrUpdate(kind, 1, (_, n) => n + 1);
    }
}
