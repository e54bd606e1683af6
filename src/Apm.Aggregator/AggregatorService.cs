using Apm.Aggregator.Alerting;
using Apm.Aggregator.Reports;
using Apm.Influx;
using Apm.Kafka;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Apm.Aggregator;

/// <summary>
/// Hosts one <see cref="SampleConsumer"/> on a dedicated thread (its Consume loop blocks); with an <see cref="AlertSink"/>
/// it evaluates the leak rules too, after putting back the alerts that were firing when the last instance stopped.
/// </summary>
public sealed class AggregatorService(
    IOptions<AggregatorOptions> options,
    IOptions<KafkaOptions> kafka,
    InfluxWriter writer,
    AggregatorMetrics metrics,
    ILogger<AggregatorService> logger,
    AlertSink? alerts = null,
    ReportSink? reports = null) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var samples = OnThread("apm-aggregator", () =>
        {
            using var consumer = new SampleConsumer(kafka.Value, options.Value, metrics, logger, writer.WriteAsync, alerts: alerts);
            consumer.Run(stoppingToken);
        });
        var reportsDone = reports is null ? Task.CompletedTask : OnThread("apm-reports", () =>
        {
            using var consumer = new ReportConsumer(kafka.Value, options.Value.GroupId + "-reports", reports, metrics, logger, writer.WriteAsync);
            consumer.Run(stoppingToken);
        });
        await samples.ConfigureAwait(false);
        await reportsDone.ConfigureAwait(false);
    }

    /// <summary>Runs a blocking Consume loop on a dedicated thread; its end or failure reaches the host through the task.</summary>
    private static Task OnThread(string name, Action run)
    {
        var done = new TaskCompletionSource();
        var thread = new Thread(() =>
        {
            try
            {
                run();
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
            Name = name,
        };
        thread.Start();
        return done.Task;
    }
}
