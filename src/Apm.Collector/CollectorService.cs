using Apm.Collector.Commands;
using Apm.Kafka;
using Apm.Protocol.V1;
using Confluent.Kafka;
using Google.Protobuf;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Apm.Collector;

/// <summary>The host collector's loop: every interval, discover and read all JVMs and publish the messages.</summary>
public sealed partial class CollectorService : BackgroundService
{
    private readonly CollectorOptions _options;
    private readonly KafkaOptions _kafka;
    private readonly ILogger<CollectorService> _logger;
    private IReadOnlyList<Apm.Protocol.V1.JvmIdentity> _watched = [];

    public CollectorService(IOptions<CollectorOptions> options, IOptions<KafkaOptions> kafka, CollectorMetrics metrics, ILogger<CollectorService> logger)
    {
        _options = options.Value;
        _kafka = kafka.Value;
        Metrics = metrics;
        _logger = logger;
    }

    public CollectorMetrics Metrics { get; }

    /// <summary>The heap-dump handler once running (null when commands are off); its outcomes feed /healthz.</summary>
    public HeapDumpHandler? HeapDumps { get; private set; }

    /// <summary>True once the command listener has its partitions (commands sent earlier are not seen).</summary>
    public bool CommandsReady => _commands?.Assigned == true;

    private CommandListener? _commands;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Reads are synchronous memory copies; run the loop off the request threads.
        await Task.Yield();
        using var sampler = new JvmSampler(_options, Metrics, _logger);
        using var publisher = new CollectorPublisher(_kafka, _options, Metrics, _logger);
        using var attach = new AttachSampler(_options, Metrics, _logger, m => publisher.Publish(m));
        var interval = _options.EffectiveSampleInterval;
        LogStarted(_logger, interval, _options.EffectiveHostName);

        // The attach loop runs beside the counter loop: a slow or stuck JVM there never delays counter samples.
        using var attachStop = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var attachLoop = attach.Enabled ? RunAttachLoopAsync(attach, attachStop.Token) : Task.CompletedTask;
        using var reports = new ProducerBuilder<string, byte[]>(_kafka.CreateProducerConfig()).Build();
        var commandLoop = _options.HeapDump.Enabled ? StartCommandLoop(publisher, reports, attachStop.Token) : Task.CompletedTask;
        try
        {
            using var timer = new PeriodicTimer(interval);
            do
            {
                try
                {
                    foreach (var message in sampler.Poll())
                    {
                        publisher.Publish(message);
                    }

                    Volatile.Write(ref _watched, sampler.SnapshotJvms());
                }
#pragma warning disable CA1031 // One bad poll must not stop the collector; it is logged and the next poll runs.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    LogPollFailed(_logger, ex);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        finally
        {
            // Requests in flight must finish (or see the cancellation) before the publisher is disposed.
            await attachStop.CancelAsync().ConfigureAwait(false);
            await attachLoop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            await attach.DrainAsync().ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            await commandLoop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            reports.Flush(TimeSpan.FromSeconds(10));
        }
    }

    /// <summary>The command listener on its own thread (Consume blocks); heap dumps run on their own tasks.</summary>
    private Task StartCommandLoop(CollectorPublisher publisher, IProducer<string, byte[]> reports, CancellationToken ct)
    {
        HeapDumps = new HeapDumpHandler(_options.HeapDump, _logger, m => publisher.Publish(m),
            chunk => reports.Produce(ApmTopics.Reports, new Message<string, byte[]> { Key = chunk.ReportId, Value = chunk.ToByteArray() }));
        _commands = new CommandListener(_kafka, _options.EffectiveHostName, HeapDumps,
            id => Volatile.Read(ref _watched).FirstOrDefault(j => j.JvmId == id), _logger);
        var done = new TaskCompletionSource();
        var thread = new Thread(() =>
        {
            try
            {
                _commands.Run(ct);
            }
            finally
            {
                _commands.Dispose();
                done.TrySetResult();
            }
        })
        {
            IsBackground = true,
            Name = "apm-commands",
        };
        thread.Start();
        return done.Task;
    }

    private async Task RunAttachLoopAsync(AttachSampler attach, CancellationToken ct)
    {
        await Task.Yield();
        using var timer = new PeriodicTimer(attach.TickInterval);
        do
        {
            try
            {
                attach.Tick(Volatile.Read(ref _watched), ct);
            }
#pragma warning disable CA1031 // A failed tick must not stop finalizer and histogram sampling; it is logged.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                LogPollFailed(_logger, ex);
            }
        }
        while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Collector started: every {Interval} on host {Host}")]
    private static partial void LogStarted(ILogger logger, TimeSpan interval, string host);

    [LoggerMessage(Level = LogLevel.Error, Message = "Collector poll failed")]
    private static partial void LogPollFailed(ILogger logger, Exception ex);
}
