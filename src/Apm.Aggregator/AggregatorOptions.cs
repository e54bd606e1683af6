namespace Apm.Aggregator;

/// <summary>Settings of an aggregator instance, bound from "Apm:Aggregator" (env: Apm__Aggregator__*).</summary>
public sealed class AggregatorOptions
{
    public const string Section = "Apm:Aggregator";

    /// <summary>Kafka consumer group; every aggregator instance of one deployment uses the same group.</summary>
    public string GroupId { get; set; } = "apm-aggregator";

    /// <summary>A batch is written when it holds this many points...</summary>
    public int BatchMaxPoints { get; set; } = 5_000;

    /// <summary>...or when its oldest message waited this long.</summary>
    public TimeSpan BatchMaxDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Batch writes running while the next batch is built. When this many are not yet stored, the aggregator stops
    /// consuming until the oldest is (memory stays bounded at about this many batches plus one). 1 = write, then build.
    /// </summary>
    public int MaxWritesInFlight { get; set; } = 2;

    /// <summary>First wait after a failed batch write; doubles up to <see cref="RetryMaxDelay"/>, retried until stored.</summary>
    public TimeSpan RetryInitialDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(15);
}
