using Apm.Collector;
using Apm.Influx;
using Apm.Kafka;
using Apm.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Apm.Benchmarks;

/// <summary>
/// What the process benchmarks (soak, scale-out) run in this process under the <c>apm</c> child processes: librdkafka's
/// mock Kafka cluster with every Apm topic at six partitions, a real influxd with the <c>apm</c> database, and the
/// environment that points an <c>apm</c> process at them.
/// </summary>
internal sealed class BackingServices : IAsyncDisposable
{
    private BackingServices(InfluxServer influx, EmbeddedKafkaCluster kafka, KafkaOptions kafkaOptions)
    {
        Influx = influx;
        Kafka = kafka;
        KafkaOptions = kafkaOptions;
    }

    public InfluxServer Influx { get; }

    public EmbeddedKafkaCluster Kafka { get; }

    public KafkaOptions KafkaOptions { get; }

    public static async Task<BackingServices> StartAsync()
    {
        var influx = await InfluxServer.StartAsync().ConfigureAwait(false);
        var kafka = EmbeddedKafkaCluster.Start(1);
        TopicAdmin.EnsureTopics(kafka, ApmTopics.All, 6);
        var influxOptions = new InfluxOptions { Url = influx.Url, Database = "apm", Timeout = TimeSpan.FromMinutes(1) };
        using (var setup = new InfluxWriter(influxOptions)) await setup.EnsureDatabaseAsync().ConfigureAwait(false);
        return new BackingServices(influx, kafka, new KafkaOptions { Partitions = 6 }.WithBootstrapServers(kafka.BootstrapServers));
    }

    /// <summary>The settings every <c>apm</c> child process gets (callers add their own).</summary>
    public Dictionary<string, string> Environment() => new()
    {
        ["Apm__Kafka__BootstrapServers"] = Kafka.BootstrapServers,
        ["Apm__Kafka__EnsureTopics"] = "false",
        ["Apm__Influx__Url"] = Influx.Url.ToString(),
        ["Apm__Influx__Database"] = "apm",
    };

    /// <summary>The collector's real publisher, for the fleet simulator (a buffer large enough never to drop).</summary>
    public CollectorPublisher StartPublisher(CollectorMetrics metrics) =>
        new(KafkaOptions, new CollectorOptions { BufferMessages = 1_000_000, HostName = "fleet-simulator" }, metrics, NullLogger.Instance);

    public async ValueTask DisposeAsync()
    {
        Kafka.Dispose();
        await Influx.DisposeAsync().ConfigureAwait(false);
    }
}
