using Apm.Aggregator;
using Apm.Aggregator.Alerting;
using Apm.Collector;
using Apm.Server;

namespace Apm.Cli;

/// <summary>The collector's counters on /healthz.</summary>
internal sealed class CollectorCounterSource(CollectorMetrics m) : ICounterSource
{
    public IEnumerable<KeyValuePair<string, long>> ReadCounters() =>
    [
        .. m.AttachFailuresByKind.Select(k => new KeyValuePair<string, long>("collector.attach_failures." + k.Key, k.Value)),
        new("collector.attach_failures", m.AttachFailures),
        new("collector.finalizer_samples", m.FinalizerSamples),
        new("collector.histogram_samples", m.HistogramSamples),
        new("collector.jvms_watched", m.JvmsWatched),
        new("collector.jvms_discovered", m.JvmsDiscovered),
        new("collector.jvms_gone", m.JvmsGone),
        new("collector.samples_read", m.SamplesRead),
        new("collector.samples_published", m.SamplesPublished),
        new("collector.samples_dropped", m.SamplesDropped),
        new("collector.delivery_failures", m.DeliveryFailures),
        new("collector.unreadable_readings", m.UnreadableReadings),
    ];
}

/// <summary>The aggregator's counters on /healthz.</summary>
internal sealed class AggregatorCounterSource(AggregatorMetrics m) : ICounterSource
{
    public IEnumerable<KeyValuePair<string, long>> ReadCounters() =>
    [
        new("aggregator.messages_consumed", m.MessagesConsumed),
        new("aggregator.points_written", m.PointsWritten),
        new("aggregator.batches_written", m.BatchesWritten),
        new("aggregator.dead_lettered", m.DeadLettered),
        new("aggregator.write_failures", m.WriteFailures),
        new("aggregator.offset_commits", m.OffsetCommits),
        new("aggregator.sequence_gaps", m.SequenceGaps),
        new("aggregator.assigned_partitions", m.AssignedPartitions),
        new("aggregator.consumer_lag", m.ConsumerLag),
        new("aggregator.last_batch_points", m.LastBatchPoints),
        new("aggregator.last_write_ms", m.LastWriteMilliseconds),
        new("aggregator.alert_transitions", m.AlertTransitions),
        new("aggregator.alerts_fired", m.AlertsFired),
        new("aggregator.alerts_resolved", m.AlertsResolved),
        new("aggregator.rule_evaluations", m.RuleEvaluations),
        new("aggregator.rule_failures", m.RuleFailures),
        new("aggregator.alert_mail_queue_failures", m.AlertMailQueueFailures),
        new("aggregator.heap_dumps_requested", m.HeapDumpsRequested),
        new("aggregator.reports_stored", m.ReportsStored),
        new("aggregator.reports_rejected", m.ReportsRejected),
        new("aggregator.report_store_failures", m.ReportStoreFailures),
        new("aggregator.report_chunk_duplicates", m.ReportChunkDuplicates),
    ];
}

/// <summary>The alert e-mail outbox's counters on /healthz and /metrics (only when e-mail is configured).</summary>
internal sealed class MailCounterSource(MailDeliveryService delivery) : ICounterSource
{
    /// <remarks>Pending lists the outbox directory: one directory read per scrape.</remarks>
    public IEnumerable<KeyValuePair<string, long>> ReadCounters() =>
    [
        new("aggregator.mail_sent", delivery.Outbox.Sent),
        new("aggregator.mail_failed_attempts", delivery.Outbox.FailedAttempts),
        new("aggregator.mail_login_failures", delivery.Outbox.LoginFailures),
        new("aggregator.mail_pending", delivery.Outbox.Pending),
        new("aggregator.mail_corrupt", delivery.Outbox.Corrupt),
        new("aggregator.mail_round_failures", delivery.RoundFailures),
    ];
}
