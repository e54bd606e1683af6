namespace Apm.Kafka;

/// <summary>
/// The product's topics. The ".v1" suffix is the payload's major version: an incompatible change gets a
/// new topic, so old and new consumers can run side by side during an upgrade.
/// </summary>
public static class ApmTopics
{
    /// <summary>JVM samples from collectors (protobuf, keyed by JVM id so one JVM's samples stay ordered).</summary>
    public const string Samples = "apm.jvm.samples.v1";

    /// <summary>Messages the aggregator could not decode, with the reason in headers.</summary>
    public const string DeadLetter = "apm.deadletter.v1";

    /// <summary>Alerts raised by the leak rules.</summary>
    public const string Alerts = "apm.alerts.v1";

    /// <summary>Commands to collectors (e.g. take a heap dump).</summary>
    public const string Commands = "apm.commands.v1";

    /// <summary>Heap-dump triage reports.</summary>
    public const string Reports = "apm.reports.v1";

    /// <summary>
    /// Default partition count: the upper bound on aggregator instances in one consumer group, and on the
    /// embedded broker six partitions also multiply its per-partition retention (5 MiB each) by six.
    /// </summary>
    public const int DefaultPartitions = 6;

    /// <summary>Every topic above, in a stable order.</summary>
    public static IReadOnlyList<string> All { get; } = [Samples, DeadLetter, Alerts, Commands, Reports];
}
