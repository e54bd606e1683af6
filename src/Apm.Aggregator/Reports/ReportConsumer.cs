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
/// Consumes the reports topic (its own consumer group, one member per aggregator), puts chunks back together, checks
/// them, stores each whole report, writes an <c>apm.report</c> point (so the API links alerts to reports) and queues
/// the "report ready" mail. Offsets are committed after a report is stored; bad chunks are counted and skipped.
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
    private readonly Dictionary<string, Pending> _pending = new(StringComparer.Ordinal);
    private long _pendingBytes;

    public ReportConsumer(KafkaOptions kafka, string groupId, ReportSink sink, AggregatorMetrics metrics, ILogger logger,
        Func<string, CancellationToken, Task> write, string topic = ApmTopics.Reports)
    {
        ArgumentNullException.ThrowIfNull(kafka);
        _sink = sink;
        _metrics = metrics;
        _logger = logger;
        _write = write;
        var config = kafka.CreateConsumerConfig(groupId);
        config.EnableAutoCommit = false;
        config.AutoOffsetReset = AutoOffsetReset.Earliest;
        _consumer = new ConsumerBuilder<string, byte[]>(config).SetErrorHandler((_, e) => LogKafkaError(_logger, e.Reason)).Build();
        _consumer.Subscribe(topic);
    }

    /// <summary>Consumes until cancelled.</summary>
    public void Run(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            ConsumeResult<string, byte[]>? r;
            try
            {
                r = _consumer.Consume(TimeSpan.FromMilliseconds(250));
            }
            catch (ConsumeException ex)
            {
                LogKafkaError(_logger, ex.Error.Reason);
                continue;
            }

            DropStale();
            if (r?.Message?.Value is not { } value) continue;
            TriageReportChunk chunk;
            try
            {
                chunk = TriageReportChunk.Parser.ParseFrom(value);
            }
            catch (InvalidProtocolBufferException ex)
            {
                Reject(r, "undecodable chunk: " + ex.Message);
                continue;
            }

            if (!ReportStore.IsValidId(chunk.ReportId) || chunk.ChunkCount is < 1 or > 10_000)
            {
                Reject(r, $"chunk with report id '{chunk.ReportId}' and {chunk.ChunkCount} chunks");
                continue;
            }

            if (!_pending.TryGetValue(chunk.ReportId, out var p))
            {
                p = new Pending(DateTime.UtcNow);
                _pending[chunk.ReportId] = p;
            }

            p.Chunks.Add(chunk);
            _pendingBytes += chunk.Payload.Length;
            p.Bytes += chunk.Payload.Length;
            while (_pendingBytes > _sink.MaxPendingBytes && _pending.Count > 0)
            {
                var oldest = _pending.MinBy(kv => kv.Value.Since);
                DropPending(oldest.Key, "incomplete reports passed the memory limit");
            }

            if (_pending.TryGetValue(chunk.ReportId, out p) && p.Chunks.Count >= chunk.ChunkCount)
            {
                DropPending(chunk.ReportId, null);
                Complete(p.Chunks, ct);
                try
                {
                    _consumer.Commit(r);
                }
                catch (KafkaException ex)
                {
                    LogKafkaError(_logger, ex.Error.Reason);
                }
            }
        }

        _consumer.Close();
    }

    public void Dispose() => _consumer.Dispose();

    private void Complete(List<TriageReportChunk> chunks, CancellationToken ct)
    {
        ReportContent report;
        try
        {
            report = ReportChunks.Join(chunks);
        }
        catch (InvalidDataException ex)
        {
            _metrics.ReportRejected();
            LogRejected(_logger, chunks[0].ReportId, ex.Message);
            return;
        }

        var m = report.Meta;
        _sink.Store.Save(m, report.Json, report.Html);
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

    private void Reject(ConsumeResult<string, byte[]> r, string reason)
    {
        _metrics.ReportRejected();
        LogRejected(_logger, r.TopicPartitionOffset.ToString(), reason);
    }

    private void DropStale()
    {
        if (_pending.Count == 0) return;
        var cutoff = DateTime.UtcNow - _sink.MaxPendingAge;
        foreach (var id in _pending.Where(kv => kv.Value.Since < cutoff).Select(kv => kv.Key).ToList())
        {
            DropPending(id, "incomplete for longer than " + _sink.MaxPendingAge);
        }
    }

    private void DropPending(string id, string? reason)
    {
        if (!_pending.Remove(id, out var p)) return;
        _pendingBytes -= p.Bytes;
        if (reason is null) return;
        _metrics.ReportRejected();
        LogRejected(_logger, id, reason);
    }

    private sealed class Pending(DateTime since)
    {
        public DateTime Since { get; } = since;

        public List<TriageReportChunk> Chunks { get; } = [];

        public long Bytes { get; set; }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Stored triage report {ReportId} of {JvmId}: {TopFinding}")]
    private static partial void LogStored(ILogger logger, string reportId, string jvmId, string topFinding);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Report {Source} rejected: {Reason}")]
    private static partial void LogRejected(ILogger logger, string source, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Report {ReportId} stored but not indexed in InfluxDB: {Reason}")]
    private static partial void LogIndexFailed(ILogger logger, string reportId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Kafka error on the reports topic: {Reason}")]
    private static partial void LogKafkaError(ILogger logger, string reason);
}
