namespace Apm.Collector;

/// <summary>Settings of the host collector, bound from the "Apm:Collector" section (env: Apm__Collector__*).</summary>
public sealed class CollectorOptions
{
    public const string Section = "Apm:Collector";

    /// <summary>How often every JVM's counters are read and published. At least 1 s.</summary>
    public TimeSpan SampleInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Host name put in every JVM identity; defaults to the machine name.</summary>
    public string? HostName { get; set; }

    /// <summary>
    /// Messages held while Kafka is unreachable (librdkafka's local queue). Past this bound new samples
    /// are dropped and counted in <see cref="CollectorMetrics.SamplesDropped"/>.
    /// </summary>
    public int BufferMessages { get; set; } = 100_000;

    /// <summary>Where hsperfdata_* directories live (tests point this at a temp dir).</summary>
    public string TmpRoot { get; set; } = "/tmp";

    /// <summary>The proc filesystem (for liveness, credentials and containers).</summary>
    public string ProcRoot { get; set; } = "/proc";

    /// <summary>Look for JVMs inside containers through /proc/&lt;pid&gt;/root.</summary>
    public bool ScanContainers { get; set; } = true;

    /// <summary>
    /// How often each JVM's finalization queue is read (GC.finalizer_info through the attach mechanism; a
    /// short safepoint, no GC). 00:00:00 turns it off; otherwise at least 1 s.
    /// </summary>
    public TimeSpan FinalizerInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How often each JVM's class histogram is taken. GC.class_histogram FORCES A FULL GC in the target JVM
    /// (a stop-the-world pause that grows with the live set), hence the long default; 00:00:00 turns it off.
    /// </summary>
    public TimeSpan HistogramInterval { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Histogram rows kept by size (largest shallow bytes first), on top of the leak-pattern rows.</summary>
    public int HistogramTopN { get; set; } = 20;

    /// <summary>
    /// Class names whose histogram rows are always kept: globs (<c>*</c> any characters, <c>?</c> one), or
    /// .NET regular expressions when prefixed with <c>re:</c>. Matched against the whole name.
    /// </summary>
    public IList<string> HistogramWatchPatterns { get; } = [];

    /// <summary>Longest one attach request (handshake plus answer) may take before the JVM counts as failed.</summary>
    public TimeSpan AttachTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Longest one class histogram may take. GC.class_histogram runs a full GC first, which on a big heap can take
    /// longer than <see cref="AttachTimeout"/>; at least <see cref="AttachTimeout"/>.
    /// </summary>
    public TimeSpan HistogramTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Attach requests in flight at once across all JVMs (each costs a socket and a safepoint in its JVM).</summary>
    public int AttachConcurrency { get; set; } = 4;

    /// <summary>Heap-dump commands (<c>Apm:Collector:HeapDump:*</c>).</summary>
    public Commands.HeapDumpOptions HeapDump { get; set; } = new();

    public TimeSpan EffectiveSampleInterval => SampleInterval < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : SampleInterval;

    public string EffectiveHostName => string.IsNullOrWhiteSpace(HostName) ? Environment.MachineName : HostName;

    /// <summary>The finalizer interval, or null when off; at least 1 s.</summary>
    public TimeSpan? EffectiveFinalizerInterval => FinalizerInterval <= TimeSpan.Zero ? null : FinalizerInterval < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : FinalizerInterval;

    /// <summary>The histogram timeout: at least the attach timeout.</summary>
    public TimeSpan EffectiveHistogramTimeout => HistogramTimeout < AttachTimeout ? AttachTimeout : HistogramTimeout;

    /// <summary>The histogram interval, or null when off; at least 1 s.</summary>
    public TimeSpan? EffectiveHistogramInterval => HistogramInterval <= TimeSpan.Zero ? null : HistogramInterval < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : HistogramInterval;
}
