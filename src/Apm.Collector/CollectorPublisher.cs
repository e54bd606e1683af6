using Apm.Kafka;
using Apm.Protocol.V1;
using Confluent.Kafka;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Apm.Collector;

/// <summary>
/// Publishes collector messages to the samples topic, keyed by JVM id so that one JVM's samples stay
/// ordered in one partition. The producer is idempotent (acks=all); while Kafka is unreachable
/// librdkafka holds up to <see cref="CollectorOptions.BufferMessages"/> messages and retries them, and
/// anything beyond that bound is dropped here and counted.
/// </summary>
public sealed partial class CollectorPublisher : IDisposable
{
    /// <summary>Header naming the message's body kind ("sample", "status", "finalizer", "histogram" or "attach-status").</summary>
    public const string TypeHeader = "apm-type";

    /// <summary>Header naming the protobuf message type of the value.</summary>
    public const string SchemaHeader = "apm-schema";

    private static readonly byte[] SchemaValue = "apm.v1.CollectorMessage"u8.ToArray();
    private static readonly byte[] SampleType = "sample"u8.ToArray();
    private static readonly byte[] StatusType = "status"u8.ToArray();
    private static readonly byte[] FinalizerType = "finalizer"u8.ToArray();
    private static readonly byte[] HistogramType = "histogram"u8.ToArray();
    private static readonly byte[] AttachStatusType = "attach-status"u8.ToArray();
    private static readonly byte[] CommandResultType = "command-result"u8.ToArray();

    private readonly IProducer<string, byte[]> _producer;
    private readonly CollectorMetrics _metrics;
    private readonly ILogger _logger;
    private readonly string _topic;
    private readonly string _collectorId;

    public CollectorPublisher(KafkaOptions kafka, CollectorOptions options, CollectorMetrics metrics, ILogger logger, string? topic = null)
    {
        _metrics = metrics;
        _logger = logger;
        _topic = topic ?? ApmTopics.Samples;
        _collectorId = options.EffectiveHostName + "/" + Environment.ProcessId;
        var config = kafka.CreateProducerConfig();
        config.QueueBufferingMaxMessages = Math.Max(1, options.BufferMessages);
        // Keep retrying while the broker is away; the bound on memory is the buffer, not time.
        config.MessageTimeoutMs = 0;
        _producer = new ProducerBuilder<string, byte[]>(config)
            .SetErrorHandler((_, e) => LogKafkaError(_logger, e.Code, e.Reason))
            .SetLogHandler((_, m) => { if (m.Level <= SyslogLevel.Warning) LogKafkaLog(_logger, m.Facility, m.Message); })
            .Build();
    }

    /// <summary>Queues one message; never blocks. Returns false (and counts a drop) when the buffer is full.</summary>
    public bool Publish(CollectorMessage message)
    {
        message.CollectorId = _collectorId;
        var (jvm, type) = message.BodyCase switch
        {
            CollectorMessage.BodyOneofCase.Sample => (message.Sample.Jvm, SampleType),
            CollectorMessage.BodyOneofCase.Status => (message.Status.Jvm, StatusType),
            CollectorMessage.BodyOneofCase.Finalizer => (message.Finalizer.Jvm, FinalizerType),
            CollectorMessage.BodyOneofCase.Histogram => (message.Histogram.Jvm, HistogramType),
            CollectorMessage.BodyOneofCase.AttachStatus => (message.AttachStatus.Jvm, AttachStatusType),
            CollectorMessage.BodyOneofCase.CommandResult => (message.CommandResult.Jvm, CommandResultType),
            _ => throw new ArgumentException("message has no body", nameof(message)),
        };
        var key = jvm?.JvmId ?? throw new ArgumentException("message has no JVM identity", nameof(message));
        var headers = new Headers
        {
            { TypeHeader, type },
            { SchemaHeader, SchemaValue },
        };
        try
        {
            _producer.Produce(_topic, new Message<string, byte[]> { Key = key, Value = message.ToByteArray(), Headers = headers }, OnDelivered);
            return true;
        }
        catch (ProduceException<string, byte[]> ex) when (ex.Error.Code == ErrorCode.Local_QueueFull)
        {
            _metrics.Dropped();
            return false;
        }
    }

    /// <summary>Waits up to <paramref name="timeout"/> for queued messages to be acknowledged; returns how many remain.</summary>
    public int Flush(TimeSpan timeout) => _producer.Flush(timeout);

    public void Dispose()
    {
        _producer.Flush(TimeSpan.FromSeconds(5));
        _producer.Dispose();
    }

    private void OnDelivered(DeliveryReport<string, byte[]> report)
    {
        if (report.Error.IsError)
        {
            _metrics.DeliveryFailed();
            LogDeliveryFailed(_logger, report.Error.Reason);
        }
        else
        {
            _metrics.Published();
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Kafka error {Code}: {Reason}")]
    private static partial void LogKafkaError(ILogger logger, ErrorCode code, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "librdkafka {Facility}: {Message}")]
    private static partial void LogKafkaLog(ILogger logger, string facility, string message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sample delivery failed: {Reason}")]
    private static partial void LogDeliveryFailed(ILogger logger, string reason);
}
