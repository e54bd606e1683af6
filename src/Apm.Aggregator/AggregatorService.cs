using Apm.Aggregator.Alerting;
using Apm.Influx;
using Apm.Kafka;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Apm.Aggregator;

/// <summary>Hosts one <see cref="SampleConsumer"/> on a dedicated thread (its Consume loop blocks); with an <see cref="AlertSink"/> it evaluates the leak rules too.</summary>
public sealed class AggregatorService(
    IOptions<AggregatorOptions> options,
    IOptions<KafkaOptions> kafka,
    InfluxWriter writer,
    AggregatorMetrics metrics,
    ILogger<AggregatorService> logger,
    AlertSink? alerts = null) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var done = new TaskCompletionSource();
        var thread = new Thread(() =>
        {
            try
            {
                using var consumer = new SampleConsumer(kafka.Value, options.Value, metrics, logger, writer.WriteAsync, alerts: alerts);
                consumer.Run(stoppingToken);
                done.TrySetResult();
            }
#pragma warning disable CA1031 // Reported to the host through the task.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                done.TrySetException(ex);
            }
        })
        {
            IsBackground = true,
            Name = "apm-aggregator",
        };
        thread.Start();
        return done.Task;
    }
}
