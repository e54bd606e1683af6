using Apm.Aggregator;
using Apm.Collector;
using Apm.Influx;
using Apm.Kafka;
using Apm.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Apm.Dashboard.Tests;

/// <summary>
/// Real parts end to end for the browser tests: a fixture JVM, the collector (hsperfdata + attach), the Kafka protocol
/// broker (librdkafka's mock cluster) on a free loopback port, an aggregator, a real influxd, and the dashboard host.
/// </summary>
public sealed class LivePipeline : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly EmbeddedKafkaCluster _kafka;
    private readonly InfluxServer _influx;
    private readonly Thread _aggregator;
    private readonly InfluxWriter _writer;
    private CollectorService? _collector;

    private LivePipeline(EmbeddedKafkaCluster kafka, InfluxServer influx, KafkaOptions kafkaOptions, InfluxOptions influxOptions)
    {
        _kafka = kafka;
        _influx = influx;
        KafkaOptions = kafkaOptions;
        InfluxOptions = influxOptions;
        _writer = new InfluxWriter(influxOptions);
        var consumer = new SampleConsumer(kafkaOptions, new AggregatorOptions { BatchMaxDelay = TimeSpan.FromMilliseconds(200) }, new AggregatorMetrics(), NullLogger.Instance, _writer.WriteAsync);
        _aggregator = new Thread(() =>
        {
            try
            {
                consumer.Run(_stop.Token);
            }
            finally
            {
                consumer.Dispose();
            }
        })
        { IsBackground = true, Name = "aggregator" };
        _aggregator.Start();
    }

    public KafkaOptions KafkaOptions { get; }

    public InfluxOptions InfluxOptions { get; }

    public InfluxWriter Writer => _writer;

    public DashboardHost Host { get; private set; } = null!;

    public static async Task<LivePipeline> StartAsync(IDictionary<string, string?> dashboardSettings)
    {
        var kafka = EmbeddedKafkaCluster.Start(1);
        TopicAdmin.EnsureTopics(kafka, ApmTopics.All, partitions: 3);
        var influx = await InfluxServer.StartAsync();
        var influxOptions = new InfluxOptions { Url = influx.Url, Database = "apm", MaxRetries = 2, RetryBaseDelay = TimeSpan.FromMilliseconds(100) };
        using (var w = new InfluxWriter(influxOptions)) await w.EnsureDatabaseAsync();
        var p = new LivePipeline(kafka, influx, new KafkaOptions { Partitions = 3 }.WithBootstrapServers(kafka.BootstrapServers), influxOptions);
        p.Host = await DashboardHost.StartAsync(influxOptions, dashboardSettings);
        return p;
    }

    /// <summary>Starts the collector sampling every local JVM each <paramref name="interval"/>.</summary>
    public async Task StartCollectorAsync(TimeSpan interval)
    {
        _collector = new CollectorService(
            Options.Create(new CollectorOptions { SampleInterval = interval, HostName = "browser-host", FinalizerInterval = TimeSpan.FromSeconds(2) }),
            Options.Create(KafkaOptions), new CollectorMetrics(), NullLogger<CollectorService>.Instance);
        await _collector.StartAsync(CancellationToken.None);
    }

    /// <summary>Stops the collector: no sample arrives any more, as when the pipeline breaks.</summary>
    public async Task StopCollectorAsync()
    {
        if (_collector is null) return;
        await _collector.StopAsync(CancellationToken.None);
        _collector.Dispose();
        _collector = null;
    }

    public async ValueTask DisposeAsync()
    {
        await StopCollectorAsync();
        await Host.DisposeAsync();
        await _stop.CancelAsync();
        _aggregator.Join(TimeSpan.FromSeconds(30));
        _writer.Dispose();
        _influx.Dispose();
        _kafka.Dispose();
        _stop.Dispose();
    }
}
