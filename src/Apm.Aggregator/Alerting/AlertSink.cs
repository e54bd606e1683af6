using Apm.Alerts.Mail;
using Apm.Alerts.Rules;
using Apm.Kafka;

namespace Apm.Aggregator.Alerting;

/// <summary>
/// What the consumer does with rule results: the engine that produces them, where transitions are published, and who
/// queues the e-mails. Every transition is also written to InfluxDB in the same batch as the samples that caused it.
/// </summary>
/// <param name="Engine">The rules and the alert lifecycle (owned by the consumer thread).</param>
/// <param name="Mail">Queues an e-mail durably (the outbox); throws when it could not; null = no e-mail.</param>
/// <param name="Topic">The alerts topic.</param>
public sealed record AlertSink(RuleEngine Engine, Action<AlertNotification>? Mail = null, string Topic = ApmTopics.Alerts)
{
    /// <summary>Rules whose firing asks the JVM's collector for a heap dump and its triage (the two finalizer rules by default).</summary>
    public IReadOnlySet<string> HeapDumpRules { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>
    /// Reads the alerts whose stored state is firing or pending; called whenever this instance is assigned partitions (at
    /// start and after every rebalance) so that alerts it takes over resolve, fire or are withdrawn under their id instead
    /// of starting again. Null = none.
    /// </summary>
    public Func<CancellationToken, Task<IReadOnlyList<AlertEvent>>>? LoadActive { get; init; }

    /// <summary>A dump command not started within this is refused by the collector.</summary>
    public TimeSpan HeapDumpExpiry { get; init; } = TimeSpan.FromMinutes(10);
}
