using Apm.Kafka;
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

    public CollectorService(IOptions<CollectorOptions> options, IOptions<KafkaOptions> kafka, CollectorMetrics metrics, ILogger<CollectorService> logger)
    {
        _options = options.Value;
        _kafka = kafka.Value;
        Metrics = metrics;
        _logger = logger;
    }

    public CollectorMetrics Metrics { get; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Reads are synchronous memory copies; run the loop off the request threads.
        await Task.Yield();
        using var sampler = new JvmSampler(_options, Metrics, _logger);
        using var publisher = new CollectorPublisher(_kafka, _options, Metrics, _logger);
        var interval = _options.EffectiveSampleInterval;
        LogStarted(_logger, interval, _options.EffectiveHostName);
        using var timer = new PeriodicTimer(interval);
        do
        {
            try
            {
                foreach (var message in sampler.Poll())
                {
                    publisher.Publish(message);
                }
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

    [LoggerMessage(Level = LogLevel.Information, Message = "Collector started: every {Interval} on host {Host}")]
    private static partial void LogStarted(ILogger logger, TimeSpan interval, string host);

    [LoggerMessage(Level = LogLevel.Error, Message = "Collector poll failed")]
    private static partial void LogPollFailed(ILogger logger, Exception ex);
}
