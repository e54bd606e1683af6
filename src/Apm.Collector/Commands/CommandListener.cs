using Apm.Kafka;
using Apm.Protocol.V1;
using Confluent.Kafka;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Apm.Collector.Commands;

/// <summary>
/// Reads the commands topic in this host's own consumer group (<c>apm-collector-&lt;host&gt;</c>; a new group starts at
/// the oldest retained command, so a command sent while the collector was joining is not missed, and the expiry keeps
/// old ones from running) and hands each command for this host to the <see cref="HeapDumpHandler"/> on its own task.
/// Commands are at least once (offsets are committed every few seconds), so a command id already seen is skipped.
/// Undecodable commands are counted and skipped. <see cref="Run"/> blocks.
/// </summary>
public sealed partial class CommandListener : IDisposable
{
    private readonly IConsumer<string, byte[]> _consumer;
    private readonly string _host;
    private readonly HeapDumpHandler _handler;
    private readonly Func<string, JvmIdentity?> _findJvm;
    private readonly ILogger _logger;
    private readonly List<Task> _running = [];
    private readonly HashSet<string> _seen = new(StringComparer.Ordinal);
    private long _undecodable;

    /// <param name="findJvm">The watched JVM with that id, or null.</param>
    public CommandListener(KafkaOptions kafka, string host, HeapDumpHandler handler, Func<string, JvmIdentity?> findJvm, ILogger logger, string topic = ApmTopics.Commands)
    {
        ArgumentNullException.ThrowIfNull(kafka);
        _host = host;
        _handler = handler;
        _findJvm = findJvm;
        _logger = logger;
        var config = kafka.CreateConsumerConfig("apm-collector-" + host);
        config.AutoOffsetReset = AutoOffsetReset.Earliest;
        config.EnableAutoCommit = true;
        _consumer = new ConsumerBuilder<string, byte[]>(config)
            .SetErrorHandler((_, e) => LogKafkaError(_logger, e.Reason))
            .Build();
        _consumer.Subscribe(topic);
    }

    /// <summary>Commands that could not be decoded.</summary>
    public long Undecodable => Interlocked.Read(ref _undecodable);

    /// <summary>True once the group assigned this listener its partitions (commands sent before that are not seen).</summary>
    public bool Assigned => _consumer.Assignment.Count > 0;

    /// <summary>Consumes until cancelled, then waits (briefly) for running commands.</summary>
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

            if (r?.Message?.Value is not { } value) continue;
            CollectorCommand command;
            try
            {
                command = CollectorCommand.Parser.ParseFrom(value);
            }
            catch (InvalidProtocolBufferException ex)
            {
                Interlocked.Increment(ref _undecodable);
                LogUndecodable(_logger, r.TopicPartitionOffset.ToString(), ex.Message);
                continue;
            }

            if (!string.Equals(command.TargetHost, _host, StringComparison.Ordinal) || command.ActionCase != CollectorCommand.ActionOneofCase.HeapDump) continue;
            if (!_seen.Add(command.CommandId)) continue;
            // Long-expired commands (older than the topic's usual retention of a day) are history, not news: skip them
            // quietly; recently expired ones are answered "expired" by the handler.
            if (command.ExpiresUnixMs < DateTimeOffset.UtcNow.AddDays(-1).ToUnixTimeMilliseconds()) continue;
            LogReceived(_logger, command.CommandId, command.JvmId, command.Trigger);
            _running.RemoveAll(t => t.IsCompleted);
            _running.Add(Task.Run(() => _handler.HandleAsync(command, _findJvm, ct), ct));
        }

        try
        {
            Task.WaitAll(_running.ToArray(), TimeSpan.FromSeconds(10));
        }
        catch (AggregateException)
        {
            // Cancelled at shutdown: the command's last result says how far it got.
        }

        _consumer.Close();
    }

    public void Dispose() => _consumer.Dispose();

    [LoggerMessage(Level = LogLevel.Information, Message = "Command {CommandId}: heap dump of {JvmId} ({Trigger})")]
    private static partial void LogReceived(ILogger logger, string commandId, string jvmId, string trigger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Undecodable command at {Source}: {Reason}")]
    private static partial void LogUndecodable(ILogger logger, string source, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Kafka error on the commands topic: {Reason}")]
    private static partial void LogKafkaError(ILogger logger, string reason);
}
