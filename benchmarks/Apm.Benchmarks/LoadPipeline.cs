using Apm.Aggregator;
using Apm.Aggregator.Alerting;
using Apm.Collector;
using Apm.Influx;
using Apm.Kafka;
using Apm.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Apm.Benchmarks;

/// <summary>
/// The parts of a load run, all real and in this process: librdkafka's mock Kafka cluster on a loopback port, a real
/// influxd, one aggregator (<see cref="SampleConsumer"/> with the leak rules on, on its own thread) and the
/// collector's <see cref="CollectorPublisher"/> fed by the fleet simulator.
/// </summary>
internal sealed class LoadPipeline : IAsyncDisposable
{
    private readonly List<(Thread Thread, CancellationTokenSource Stop, InfluxWriter Writer)> _aggregators = [];

    private LoadPipeline(EmbeddedKafkaCluster kafka, InfluxServer influx, KafkaOptions kafkaOptions, InfluxOptions influxOptions)
    {
        Kafka = kafka;
        Influx = influx;
        KafkaOptions = kafkaOptions;
        InfluxOptions = influxOptions;
        Publisher = new CollectorPublisher(kafkaOptions, new CollectorOptions { BufferMessages = 1_000_000, HostName = "fleet-simulator" }, PublisherMetrics, NullLogger.Instance);
        Query = new InfluxQueryClient(influxOptions);
    }

    public EmbeddedKafkaCluster Kafka { get; }

    public InfluxServer Influx { get; }

    public KafkaOptions KafkaOptions { get; }

    public InfluxOptions InfluxOptions { get; }

    public CollectorMetrics PublisherMetrics { get; } = new();

    public CollectorPublisher Publisher { get; }

    public InfluxQueryClient Query { get; }

    /// <summary>Counters of every aggregator started, in start order.</summary>
    public List<AggregatorMetrics> AggregatorMetrics { get; } = [];

    /// <summary>Messages acknowledged by Kafka that no aggregator has consumed yet.</summary>
    public long Lag => PublisherMetrics.SamplesPublished - AggregatorMetrics.Sum(m => m.MessagesConsumed);

    /// <summary>Points all aggregators had InfluxDB acknowledge.</summary>
    public long PointsWritten => AggregatorMetrics.Sum(m => m.PointsWritten);

    public static async Task<LoadPipeline> StartAsync(InfluxServer influx, int partitions)
    {
        var kafka = EmbeddedKafkaCluster.Start(1);
        TopicAdmin.EnsureTopics(kafka, ApmTopics.All, partitions);
        var kafkaOptions = new KafkaOptions { Partitions = partitions }.WithBootstrapServers(kafka.BootstrapServers);
        // Members that start together can wait in a join the mock coordinator holds for the whole rebalance timeout
        // (max.poll.interval.ms, 10 minutes in production): give up on a missing member after 30 s here.
        kafkaOptions.Extra["session.timeout.ms"] = "10000";
        kafkaOptions.Extra["heartbeat.interval.ms"] = "1000";
        kafkaOptions.Extra["max.poll.interval.ms"] = "30000";
        var influxOptions = new InfluxOptions { Url = influx.Url, Database = "apm", Timeout = TimeSpan.FromMinutes(1) };
        using (var setup = new InfluxWriter(influxOptions)) await setup.EnsureDatabaseAsync().ConfigureAwait(false);
        return new LoadPipeline(kafka, influx, kafkaOptions, influxOptions);
    }

    /// <summary>
    /// Starts one aggregator (a consumer-group member) with the default batch settings and every leak rule on
    /// (<paramref name="rules"/>, or the default rules and windows).
    /// </summary>
    public void StartAggregator(RuleSet? rules = null)
    {
        var metrics = new AggregatorMetrics();
        var writer = new InfluxWriter(InfluxOptions);
        var stop = new CancellationTokenSource();
        var alerts = new AlertSink(new RuleEngine(rules ?? new RuleSet()));
        var consumer = new SampleConsumer(KafkaOptions, new AggregatorOptions(), metrics, NullLogger.Instance, writer.WriteAsync, alerts: alerts);
        var thread = new Thread(() =>
        {
            try
            {
                consumer.Run(stop.Token);
            }
            finally
            {
                consumer.Dispose();
            }
        })
        { IsBackground = true, Name = "aggregator-" + AggregatorMetrics.Count };
        AggregatorMetrics.Add(metrics);
        _aggregators.Add((thread, stop, writer));
        thread.Start();
    }

    public async ValueTask DisposeAsync()
    {
        Publisher.Dispose();
        foreach (var (thread, stop, writer) in _aggregators)
        {
            await stop.CancelAsync().ConfigureAwait(false);
            thread.Join(TimeSpan.FromSeconds(30));
            writer.Dispose();
            stop.Dispose();
        }

        Query.Dispose();
        Kafka.Dispose();
    }
}
