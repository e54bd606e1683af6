using Apm.Alerts.Mail;
using Apm.Influx;
using Apm.Kafka;
using Apm.Protocol.V1;
using Apm.Reports;
using Confluent.Kafka;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Apm.Aggregator.Reports;

/// <summary>Where received reports go: the store, and who hears about them (the "report ready" mail).</summary>
/// <param name="Store">The report store.</param>
/// <param name="Mail">Queues the "report ready" mail for reports an alert asked for; null = no mail.</param>
public sealed record ReportSink(ReportStore Store, Action<ReportNotification>? Mail = null)
{
    /// <summary>Most bytes of incomplete reports held at once; beyond it the oldest incomplete report is dropped.</summary>
    public long MaxPendingBytes { get; init; } = 128L * 1024 * 1024;

    /// <summary>An incomplete report older than this is dropped (its collector died mid-send).</summary>
    public TimeSpan MaxPendingAge { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>
/// Consumes the reports topic (its own consumer group, one member per aggregator), puts chunks back together
/// (<see cref="ReportAssembler"/>), checks them, stores each whole report, writes an <c>apm.report</c> point (so the API
/// links alerts to reports) and queues the "report ready" mail. Offsets are committed only below the oldest report not
/// yet stored; bad chunks are counted and skipped, identical redelivered chunks ignored, and a report the store cannot
/// take (a full or broken disk) is counted, logged and retried with a growing delay: the loop never ends on it.
/// <see cref="Run"/> blocks.
/// </summary>
public sealed partial class ReportConsumer : IDisposable
{
    /// <summary>The InfluxDB measurement that indexes stored reports (tags report_id, alert_id, jvm_id, host).</summary>
    public const string Measurement = "apm.report";

    private readonly IConsumer<string, byte[]> _consumer;
    private readonly ReportSink _sink;
    private readonly AggregatorMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Func<string, CancellationToken, Task> _write;
    private readonly ReportAssembler _assembler;

    public ReportConsumer(KafkaOptions kafka, string groupId, ReportSink sink, AggregatorMetrics metrics, ILogger logger,
        Func<string, CancellationToken, Task> write, string topic = ApmTopics.Reports)
    {
        ArgumentNullException.ThrowIfNull(kafka);
        ArgumentNullException.ThrowIfNull(sink);
        _sink = sink;
        _metrics = metrics;
        _logger = logger;
        _write = write;
        _assembler = new ReportAssembler(sink.MaxPendingBytes, sink.MaxPendingAge);
        var config = kafka.CreateConsumerConfig(groupId);
        config.EnableAutoCommit = false;
        config.AutoOffsetReset = AutoOffsetReset.Earliest;
        _consumer = new ConsumerBuilder<string, byte[]>(config)
            .SetErrorHandler((_, e) => LogKafkaError(_logger, e.Reason))
            .SetPartitionsRevokedHandler((c, parts) =>
            {
                // Commit what is safe before another member takes these partitions; it reads the rest again.
                var tps = parts.Select(p => p.TopicPartition).ToList();
                Commit(c, _assembler.CommitOffsets(tps));
                _assembler.Revoke(tps);
            })
            .SetPartitionsLostHandler((_, parts) => _assembler.Revoke(parts.Select(p => p.TopicPartition)))
            .Build();
        _consumer.Subscribe(topic);
    }

    /// <summary>Consumes until cancelled.</summary>
    public void Run(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            ConsumeResult<string, byte[]>? r = null;
            try
            {
                r = _consumer.Consume(TimeSpan.FromMilliseconds(250));
            }
            catch (ConsumeException ex)
            {
                LogKafkaError(_logger, ex.Error.Reason);
            }

            var now = DateTime.UtcNow;
            if (r?.Message is not null) Handle(r, now, ct);
            foreach (var id in _assembler.DueForRetry(now)) TryStore(id, ct);
            foreach (var (id, reason) in _assembler.Evict(now)) Reject(id, reason);
            Seek(_assembler.Rewinds(now, storeWorks: false));
            Commit(_consumer, _assembler.CommitOffsets());
        }

        _consumer.Close();
    }

    public void Dispose() => _consumer.Dispose();

    private void Handle(ConsumeResult<string, byte[]> r, DateTime now, CancellationToken ct)
    {
        var at = r.TopicPartitionOffset;
        if (r.Message.Value is not { } value)
        {
            _assembler.Seen(at);
            return;
        }

        TriageReportChunk chunk;
        try
        {
            chunk = TriageReportChunk.Parser.ParseFrom(value);
        }
        catch (InvalidProtocolBufferException ex)
        {
            _assembler.Seen(at);
            Reject(at.ToString(), "undecodable chunk: " + ex.Message);
            return;
        }

        if (!ReportStore.IsValidId(chunk.ReportId) || chunk.ChunkCount is < 1 or > 10_000 || chunk.ChunkIndex < 0 || chunk.ChunkIndex >= chunk.ChunkCount)
        {
            _assembler.Seen(at);
            Reject(at.ToString(), $"chunk {chunk.ChunkIndex} of {chunk.ChunkCount} of report '{chunk.ReportId}'");
            return;
        }

        // A report stored already, read again (a rebalance, a restart before the commit): nothing to do, no second mail.
        if (!_assembler.Holds(chunk.ReportId) && _sink.Store.TryGet(chunk.ReportId) is not null)
        {
            _assembler.Seen(at);
            _metrics.ReportChunkDuplicate();
            return;
        }

        switch (_assembler.Add(chunk, at, now, out var reason))
        {
            case ChunkOutcome.Duplicate:
                _metrics.ReportChunkDuplicate();
                break;
            case ChunkOutcome.Conflict:
                Reject(chunk.ReportId, reason!);
                break;
            case ChunkOutcome.Complete:
                TryStore(chunk.ReportId, ct);
                break;
            case ChunkOutcome.Pending:
            case ChunkOutcome.Refused:
            default:
                break;
        }
    }

    /// <summary>Joins, checks and stores a complete report; on a store failure it stays held for a retry.</summary>
    private void TryStore(string id, CancellationToken ct)
    {
        ReportContent report;
        try
        {
            report = ReportChunks.Join(_assembler.ChunksOf(id));
        }
        catch (InvalidDataException ex)
        {
            _assembler.Rejected(id);
            Reject(id, ex.Message);
            return;
        }

        var m = report.Meta;
        try
        {
            _sink.Store.Save(m, report.Json, report.Html);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _metrics.ReportStoreFailed();
            var delay = _assembler.StoreFailed(id, DateTime.UtcNow);
            LogStoreFailed(_logger, id, ex.Message, delay);
            return;
        }

        _assembler.Stored(id);
        Seek(_assembler.Rewinds(DateTime.UtcNow, storeWorks: true));
        var lines = new LineProtocolBuilder();
        lines.Measurement(Measurement).Tag("alert_id", m.AlertId).Tag("host", m.Host).Tag("jvm_id", m.JvmId).Tag("report_id", m.Id)
            .Field("trigger", m.Trigger).Field("top_finding", m.TopFinding).Field("dump_bytes", m.DumpBytes).Field("command_id", m.CommandId)
            .Timestamp(m.CreatedAt);
        try
        {
            _write(lines.ToString(), ct).GetAwaiter().GetResult();
        }
        catch (Exception ex) when (ex is InfluxWriteException or HttpRequestException)
        {
            // The report is stored and listed from the store; only the alert's link to it is missing.
            LogIndexFailed(_logger, m.Id, ex.Message);
        }

        _metrics.ReportStored();
        LogStored(_logger, m.Id, m.JvmId, m.TopFinding);
        if (_sink.Mail is { } mail && !string.IsNullOrEmpty(m.AlertId))
        {
            var name = string.IsNullOrEmpty(m.MainClass) ? m.JvmId : $"{m.MainClass} on {m.Host}";
            try
            {
                mail(new ReportNotification(m.Id, m.AlertId, m.JvmId, name, m.TopFinding, m.CreatedAt, m.DumpBytes));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                _metrics.AlertMailQueueFailed();
                LogRejected(_logger, m.Id, "report-ready mail not queued: " + ex.Message);
            }
        }
    }

    private void Reject(string source, string reason)
    {
        _metrics.ReportRejected();
        LogRejected(_logger, source, reason);
    }

    private void Seek(IReadOnlyList<TopicPartitionOffset> offsets)
    {
        foreach (var o in offsets)
        {
            try
            {
                _consumer.Seek(o);
                LogRewound(_logger, o.ToString());
            }
            catch (KafkaException ex)
            {
                LogKafkaError(_logger, ex.Error.Reason);
            }
        }
    }

    private void Commit(IConsumer<string, byte[]> consumer, IReadOnlyList<TopicPartitionOffset> offsets)
    {
        if (offsets.Count == 0) return;
        try
        {
            consumer.Commit(offsets);
        }
        catch (KafkaException ex)
        {
            LogKafkaError(_logger, ex.Error.Reason);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Report {ReportId} could not be stored ({Reason}); it is kept and tried again in {Delay}")]
    private static partial void LogStoreFailed(ILogger logger, string reportId, string reason, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Information, Message = "Reading the reports topic again from {Offset}: a report dropped while the store failed")]
    private static partial void LogRewound(ILogger logger, string offset);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stored triage report {ReportId} of {JvmId}: {TopFinding}")]
    private static partial void LogStored(ILogger logger, string reportId, string jvmId, string topFinding);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Report {Source} rejected: {Reason}")]
    private static partial void LogRejected(ILogger logger, string source, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Report {ReportId} stored but not indexed in InfluxDB: {Reason}")]
    private static partial void LogIndexFailed(ILogger logger, string reportId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Kafka error on the reports topic: {Reason}")]
    private static partial void LogKafkaError(ILogger logger, string reason);
}
