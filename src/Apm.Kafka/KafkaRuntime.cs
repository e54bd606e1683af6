using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Apm.Kafka;

/// <summary>
/// The Kafka a process uses: the configured cluster, or, when <see cref="KafkaOptions.BootstrapServers"/> is
/// empty, an <see cref="EmbeddedKafkaCluster"/> that lives as long as this object. Either way Apm's topics
/// (<see cref="ApmTopics.All"/>) exist once <see cref="StartAsync"/> returns.
/// </summary>
public sealed class KafkaRuntime : IDisposable
{
    private KafkaRuntime(KafkaOptions options, EmbeddedKafkaCluster? embedded)
    {
        Options = options;
        Embedded = embedded;
    }

    /// <summary>The options to build clients from; their BootstrapServers is never empty.</summary>
    public KafkaOptions Options { get; }

    /// <summary>The embedded cluster when one was started; null on a real cluster.</summary>
    public EmbeddedKafkaCluster? Embedded { get; }

    /// <summary>Where clients connect.</summary>
    public string BootstrapServers => Options.BootstrapServers;

    /// <summary>
    /// Starts the embedded cluster if the options ask for it, and creates the missing Apm topics.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Partitions or EmbeddedBrokers is out of range.</exception>
    public static async Task<KafkaRuntime> StartAsync(KafkaOptions options, ILogger? logger = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Partitions, 1);
        logger ??= NullLogger.Instance;
        if (!options.UsesEmbeddedCluster)
        {
            logger.LogInformation("Kafka: {Options}", options);
            await TopicAdmin.EnsureTopicsAsync(options, ApmTopics.All, logger, cancellationToken: cancellationToken).ConfigureAwait(false);
            return new KafkaRuntime(options, null);
        }

        var embedded = EmbeddedKafkaCluster.Start(options.EmbeddedBrokers, logger);
        try
        {
            TopicAdmin.EnsureTopics(embedded, ApmTopics.All, options.Partitions);
            return new KafkaRuntime(options.WithBootstrapServers(embedded.BootstrapServers), embedded);
        }
        catch
        {
            embedded.Dispose();
            throw;
        }
    }

    /// <summary>Stops the embedded cluster, if any (its messages are lost: they live in memory only).</summary>
    public void Dispose() => Embedded?.Dispose();
}
