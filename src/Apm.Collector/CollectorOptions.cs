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

    public TimeSpan EffectiveSampleInterval => SampleInterval < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : SampleInterval;

    public string EffectiveHostName => string.IsNullOrWhiteSpace(HostName) ? Environment.MachineName : HostName;
}
