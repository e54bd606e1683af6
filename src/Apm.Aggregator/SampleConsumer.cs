using System.Text;
using Apm.Aggregator.Alerting;
using Apm.Alerts.Rules;
using Apm.Influx;
using Apm.Kafka;
using Apm.Protocol.V1;
using Confluent.Kafka;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Apm.Aggregator;

/// <summary>
/// One aggregator instance: a member of the consumer group on the samples topic. It decodes messages,
/// writes their points to InfluxDB in batches and commits offsets only after the batch is stored
/// (at-least-once; replays rewrite identical points). Undecodable messages go to the dead-letter topic.
/// Writes run in the background while the next batch is built, at most <see cref="AggregatorOptions.MaxWritesInFlight"/>
/// at a time (then consuming stops until the oldest is stored); offsets are committed in batch order, each batch's only
/// once it and every earlier one are stored (<see cref="OrderedWrites"/>).
/// <see cref="Run"/> blocks: call it on a dedicated thread.
/// </summary>
public sealed partial class SampleConsumer : IDisposable
{
    private readonly AggregatorOptions _options;
    private readonly AggregatorMetrics _metrics;
    private readonly ILogger _logger;
    private readonly OrderedWrites _writes;
    private readonly IConsumer<string, byte[]> _consumer;
    private readonly IProducer<string, byte[]> _producer;
    private readonly AlertSink? _alerts;
    private readonly string _topic;
    private readonly string _deadLetterTopic;
    private readonly Dictionary<TopicPartition, TopicPartitionOffset> _pending = [];
    private readonly Dictionary<string, JvmSample> _previous = new(StringComparer.Ordinal);
    private static readonly TimeSpan ShutdownGrace = TimeSpan.FromSeconds(10);
    private readonly LineProtocolBuilder _batch = new();
    private int _batchPoints;
    private DateTime _batchStarted;
    private CancellationToken _stopping;

    /// <param name="write">Stores a batch of line protocol; throws when it could not (the batch is then retried).</param>
    /// <param name="alerts">Rule evaluation and alert outputs; null = samples only.</param>
    public SampleConsumer(KafkaOptions kafka, AggregatorOptions options, AggregatorMetrics metrics, ILogger logger,
        Func<ReadOnlyMemory<byte>, CancellationToken, Task> write, string? topic = null, string? deadLetterTopic = null, AlertSink? alerts = null)
    {
        ArgumentNullException.ThrowIfNull(kafka);
        _options = options;
        _metrics = metrics;
        _logger = logger;
        _writes = new OrderedWrites(write, Math.Max(1, options.MaxWritesInFlight), options.RetryInitialDelay, options.RetryMaxDelay,
            (points, delay, ex) =>
            {
                _metrics.WriteFailed();
                LogWriteFailed(_logger, points, delay, ex.Message);
            },
            (points, ms) =>
            {
                _metrics.Written(points);
                _metrics.LastBatchPoints = points;
                _metrics.LastWriteMilliseconds = ms;
            });
        _topic = topic ?? ApmTopics.Samples;
        _deadLetterTopic = deadLetterTopic ?? ApmTopics.DeadLetter;
        var config = kafka.CreateConsumerConfig(options.GroupId);
        config.EnableAutoCommit = false;
        config.AutoOffsetReset = AutoOffsetReset.Earliest;
        // A batch is retried until InfluxDB takes it; stay in the group meanwhile (see docs/operations). It is also the
        // rebalance timeout: a join waits that long for a member that does not come back. Apm__Kafka__Extra__max.poll.interval.ms
        // overrides it.
        config.MaxPollIntervalMs ??= (int)TimeSpan.FromMinutes(10).TotalMilliseconds;
        _consumer = new ConsumerBuilder<string, byte[]>(config)
            .SetErrorHandler((_, e) => LogKafkaError(_logger, e.Code, e.Reason))
            .SetPartitionsAssignedHandler((c, parts) =>
            {
                _metrics.AssignedPartitions = c.Assignment.Count + parts.Count;
                LogAssigned(_logger, string.Join(",", parts.Select(p => p.Partition.Value)));
                RestoreActiveAlerts();
            })
            .SetPartitionsRevokedHandler((c, parts) =>
            {
                // Store what we hold (and every write in flight) before another member takes these partitions:
                // no loss, no replay.
                FlushAll();
                foreach (var p in parts) _pending.Remove(p.TopicPartition);
                _previous.Clear();
                // Rule state of these partitions' JVMs moves to the new owner (which restores it from InfluxDB).
                _alerts?.Engine.ForgetPartitions(parts.Select(p => p.Partition.Value).ToHashSet());
                _metrics.AssignedPartitions = Math.Max(0, c.Assignment.Count - parts.Count);
                LogRevoked(_logger, string.Join(",", parts.Select(p => p.Partition.Value)));
            })
            .SetPartitionsLostHandler((_, parts) =>
            {
                // Writes in flight go on (harmless), but the lost partitions' offsets are no longer ours to commit.
                _writes.ForgetPartitions(parts.Select(p => p.TopicPartition).ToList());
                _pending.Clear();
                _batch.Clear();
                _batchPoints = 0;
                _previous.Clear();
                _alerts?.Engine.ForgetPartitions(parts.Select(p => p.Partition.Value).ToHashSet());
                LogLost(_logger, parts.Count);
            })
            .Build();
        _producer = new ProducerBuilder<string, byte[]>(kafka.CreateProducerConfig()).Build();
        _alerts = alerts;
    }

    /// <summary>Consumes until <paramref name="stoppingToken"/> fires, then stores and commits what it holds.</summary>
    public void Run(CancellationToken stoppingToken)
    {
        _stopping = stoppingToken;
        _consumer.Subscribe(_topic);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                CommitStored();
                if (_writes.IsFull)
                {
                    // Backpressure: InfluxDB is slow or failing; hold nothing more in memory until the oldest write is stored.
                    _writes.WaitForOldest(TimeSpan.FromMilliseconds(200), stoppingToken);
                    continue;
                }

                var wait = _batchPoints == 0 ? TimeSpan.FromMilliseconds(200)
                    : _options.BatchMaxDelay - (DateTime.UtcNow - _batchStarted);
                // Come back soon to commit a write that is stored meanwhile.
                if (_writes.Count > 0 && wait > TimeSpan.FromMilliseconds(50)) wait = TimeSpan.FromMilliseconds(50);
                ConsumeResult<string, byte[]>? result = null;
                if (wait > TimeSpan.Zero)
                {
                    try
                    {
                        result = _consumer.Consume(wait);
                    }
                    catch (ConsumeException ex)
                    {
                        LogConsumeError(_logger, ex.Error.Reason);
                    }
                }

                if (result is { IsPartitionEOF: false, Message: not null }) Handle(result);
                if (_batchPoints >= _options.BatchMaxPoints || (_pending.Count > 0 && DateTime.UtcNow - _batchStarted >= _options.BatchMaxDelay))
                {
                    SealBatch();
                }
            }

        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopped while waiting for a write (being retried): the writes go on during the grace period below.
        }

        // Shutting down: store and commit what we hold, within a grace period, then leave the group
        // (Close runs the revocation handler, which flushes too).
        using var grace = new CancellationTokenSource(ShutdownGrace);
        _stopping = grace.Token;
        try
        {
            FlushAll();
            _consumer.Close();
        }
        catch (OperationCanceledException)
        {
            // InfluxDB did not take the last batches in time: they are uncommitted and will be replayed.
            _writes.Cancel();
            LogShutdownUnflushed(_logger, _writes.PointsHeld + _batchPoints);
        }
    }

    public void Dispose()
    {
        _writes.Dispose();
        _consumer.Dispose();
        _producer.Flush(TimeSpan.FromSeconds(5));
        _producer.Dispose();
    }

    private void Handle(ConsumeResult<string, byte[]> result)
    {
        _metrics.Consumed();
        if (_pending.Count == 0) _batchStarted = DateTime.UtcNow;
        _pending[result.TopicPartition] = new TopicPartitionOffset(result.TopicPartition, result.Offset + 1);
        CollectorMessage message;
        try
        {
            message = CollectorMessage.Parser.ParseFrom(result.Message.Value ?? []);
        }
        catch (InvalidProtocolBufferException ex)
        {
            DeadLetter(result, "undecodable: " + ex.Message);
            return;
        }

        if (SamplePoints.Validate(message) is { } problem)
        {
            DeadLetter(result, "invalid: " + problem);
            return;
        }

        JvmSample? previous = null;
        if (message.BodyCase == CollectorMessage.BodyOneofCase.Sample)
        {
            var s = message.Sample;
            if (_previous.TryGetValue(s.Jvm.JvmId, out previous))
            {
                if (s.Sequence > previous.Sequence + 1) _metrics.SequenceGap();
                if (s.Sequence <= previous.Sequence) previous = null; // a replay or a restarted collector
            }

            _previous[s.Jvm.JvmId] = s;
        }
        else if (message.BodyCase == CollectorMessage.BodyOneofCase.Status && message.Status.State == JvmStatus.Types.State.Gone)
        {
            _previous.Remove(message.Status.Jvm.JvmId);
        }

        _batchPoints += SamplePoints.Append(_batch, message, previous);
        if (_alerts is not null) EvaluateRules(message, result.Partition.Value);
    }

    /// <summary>
    /// Runs the rules on the message and sends every transition three ways: a point in the current batch (stored with
    /// the samples that caused it), a message on the alerts topic (flushed before the commit), and an e-mail queued in
    /// the persisted outbox (firing and resolved only).
    /// </summary>
    private void EvaluateRules(CollectorMessage message, int partition)
    {
        var engine = _alerts!.Engine;
        var jvm = SamplePoints.JvmOf(message);
        var known = engine.Identity(jvm.JvmId);
        var events = engine.Observe(message, partition);
        _metrics.RulesEvaluated(engine.Evaluations, engine.RuleFailures);
        if (events.Count == 0) return;
        var identity = engine.Identity(jvm.JvmId) ?? known ?? jvm;
        foreach (var e in events)
        {
            _metrics.AlertTransition(e.State == AlertState.Firing, e.State == AlertState.Resolved);
            LogAlert(_logger, AlertOutputs.StateName(e.State), e.Rule, e.JvmId, e.Summary);
            _batchPoints += AlertOutputs.AppendPoint(_batch, e, identity);
            var headers = new Headers { { "apm-schema", "apm.v1.AlertTransition"u8.ToArray() } };
            _producer.Produce(_alerts.Topic, new Message<string, byte[]>
            {
                Key = e.JvmId,
                Value = AlertOutputs.ToTransition(e, identity).ToByteArray(),
                Headers = headers,
            });
            if (e.State == AlertState.Firing && _alerts.HeapDumpRules.Contains(e.Rule) && !string.IsNullOrEmpty(identity.Host))
            {
                RequestHeapDump(e, identity);
            }

            if (_alerts.Mail is { } mail && AlertOutputs.ToNotification(e, identity) is { } notification)
            {
                try
                {
                    mail(notification);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    _metrics.AlertMailQueueFailed();
                    LogMailQueueFailed(_logger, e.Id, ex.Message);
                }
            }
        }
    }

    /// <summary>Messages between this consumer's position and the end of each owned partition (cached watermarks: no broker round trip).</summary>
    private long Lag()
    {
        long lag = 0;
        foreach (var tp in _consumer.Assignment)
        {
            var w = _consumer.GetWatermarkOffsets(tp);
            var position = _consumer.Position(tp);
            if (w.High.Value >= 0 && position.Value >= 0) lag += Math.Max(0, w.High.Value - position.Value);
        }

        return lag;
    }

    /// <summary>
    /// Puts the stored firing and pending alerts back into the tracker (idempotent: keys it already holds are kept). Runs on the
    /// consumer thread when partitions are assigned; a failure only costs a possible second firing mail.
    /// </summary>
    private void RestoreActiveAlerts()
    {
        if (_alerts?.LoadActive is not { } load) return;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            var active = load(timeout.Token).GetAwaiter().GetResult();
            foreach (var alert in active) _alerts.Engine.Tracker.Restore(alert);
            LogRestored(_logger, active.Count);
        }
#pragma warning disable CA1031 // InfluxDB down or slow: samples must still flow; the alerts may fire once more.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogRestoreFailed(_logger, ex.Message);
        }
    }

    /// <summary>Asks the JVM's collector for a heap dump and its triage (the report comes back on the reports topic).</summary>
    private void RequestHeapDump(AlertEvent e, JvmIdentity jvm)
    {
        var command = CollectorCommand.ForHeapDump(e.JvmId, jvm.Host, _alerts!.HeapDumpExpiry, "rule:" + e.Rule, "aggregator", e.Id);
        _metrics.HeapDumpRequested();
        LogDumpRequested(_logger, e.JvmId, e.Rule, command.CommandId);
        // Stored with the alert that asked for it, in the same batch.
        _batchPoints += SamplePoints.AppendCommandRequested(_batch, command);
        _producer.Produce(ApmTopics.Commands, new Message<string, byte[]> { Key = jvm.Host, Value = command.ToByteArray() });
    }

    private void DeadLetter(ConsumeResult<string, byte[]> result, string reason)
    {
        _metrics.DeadLetter();
        LogDeadLetter(_logger, result.TopicPartitionOffset.ToString(), reason);
        var headers = new Headers
        {
            { "apm-error", Encoding.UTF8.GetBytes(reason) },
            { "apm-source", Encoding.UTF8.GetBytes(result.TopicPartitionOffset.ToString()) },
        };
        if (result.Message.Headers != null)
        {
            foreach (var h in result.Message.Headers) headers.Add(h.Key, h.GetValueBytes());
        }

        _producer.Produce(_deadLetterTopic, new Message<string, byte[]> { Key = result.Message.Key, Value = result.Message.Value, Headers = headers });
    }

    /// <summary>
    /// Hands the batch being built to the background writes (the caller checked there is room) and starts a new one.
    /// A batch of dead letters only has no points but still queues its offsets, in order.
    /// </summary>
    private void SealBatch()
    {
        if (_pending.Count == 0) return;
        _writes.Submit(_batchPoints > 0 ? _batch.ToUtf8() : null, _batchPoints, _pending.Values);
        _pending.Clear();
        _batch.Clear();
        _batchPoints = 0;
    }

    /// <summary>Commits the offsets of the batches stored so far, in order (non-blocking apart from the producer flush).</summary>
    private void CommitStored()
    {
        var offsets = _writes.TakeStoredOffsets();
        if (offsets.Count == 0) return;

        // Dead letters and alert transitions must be durable before their offsets are committed (this flushes the
        // ones of later batches too: harmless).
        while (_producer.Flush(TimeSpan.FromSeconds(1)) > 0) _stopping.ThrowIfCancellationRequested();
        try
        {
            _consumer.Commit(offsets);
            _metrics.Committed();
            _metrics.ConsumerLag = Lag();
        }
        catch (KafkaException ex)
        {
            // The points are stored; an uncommitted offset only means a harmless replay.
            LogCommitFailed(_logger, ex.Error.Reason);
        }
    }

    /// <summary>
    /// Seals the current batch, waits until it and every write in flight are stored (retrying; throws when
    /// <see cref="_stopping"/> fires first) and commits them all. Before a revocation and at shutdown.
    /// </summary>
    private void FlushAll()
    {
        if (_pending.Count > 0)
        {
            // Room for the current batch: wait for the oldest writes first (the window stays bounded).
            while (_writes.IsFull)
            {
                _writes.WaitForOldest(Timeout.InfiniteTimeSpan, _stopping);
                CommitStored();
            }

            SealBatch();
        }

        _writes.WaitForAll(_stopping);
        CommitStored();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Restored {Count} firing and pending alerts from InfluxDB")]
    private static partial void LogRestored(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not restore firing and pending alerts from InfluxDB ({Reason}); they may fire again")]
    private static partial void LogRestoreFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Asked the collector of {JvmId} for a heap dump ({Rule} fired): command {CommandId}")]
    private static partial void LogDumpRequested(ILogger logger, string jvmId, string rule, string commandId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Alert {State}: {Rule} on {JvmId}: {Summary}")]
    private static partial void LogAlert(ILogger logger, string state, string rule, string jvmId, string summary);

    [LoggerMessage(Level = LogLevel.Error, Message = "Alert {AlertId}: the e-mail could not be queued in the outbox: {Reason}")]
    private static partial void LogMailQueueFailed(ILogger logger, string alertId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stopped with {Points} points not stored; they will be replayed from Kafka")]
    private static partial void LogShutdownUnflushed(ILogger logger, int points);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Kafka error {Code}: {Reason}")]
    private static partial void LogKafkaError(ILogger logger, ErrorCode code, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Consume failed: {Reason}")]
    private static partial void LogConsumeError(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Partitions assigned: {Partitions}")]
    private static partial void LogAssigned(ILogger logger, string partitions);

    [LoggerMessage(Level = LogLevel.Information, Message = "Partitions revoked: {Partitions}")]
    private static partial void LogRevoked(ILogger logger, string partitions);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} partitions lost; their uncommitted messages will be replayed by the new owner")]
    private static partial void LogLost(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dead-lettered message at {Source}: {Reason}")]
    private static partial void LogDeadLetter(ILogger logger, string source, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Writing {Points} points failed, retrying in {Delay}: {Reason}")]
    private static partial void LogWriteFailed(ILogger logger, int points, TimeSpan delay, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Offset commit failed (points are stored; the batch may replay): {Reason}")]
    private static partial void LogCommitFailed(ILogger logger, string reason);
}
