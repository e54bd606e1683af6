using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Apm.Kafka;

/// <summary>Creates Apm's topics when they are missing; never alters an existing topic.</summary>
public static class TopicAdmin
{
    /// <summary>
    /// Creates <paramref name="topics"/> on a real cluster through the AdminClient, with
    /// <see cref="KafkaOptions.Partitions"/> partitions and <see cref="KafkaOptions.ReplicationFactor"/>.
    /// Topics that exist already are left as they are. Costs one CreateTopics round trip, bounded by
    /// <paramref name="timeout"/> (30 s when null).
    /// </summary>
    /// <remarks>
    /// Not for the embedded cluster: librdkafka 2.0.2's mock cluster names no controller and does not serve
    /// CreateTopics, so this fails there with "Failed while waiting for controller" after the timeout. Use
    /// <see cref="EnsureTopics(EmbeddedKafkaCluster, IEnumerable{string}, int)"/> for it (as <see cref="KafkaRuntime"/> does).
    /// </remarks>
    /// <exception cref="CreateTopicsException">A topic could not be created for another reason than existing.</exception>
    /// <exception cref="KafkaException">The cluster could not be reached within the request timeout.</exception>
    public static async Task EnsureTopicsAsync(
        KafkaOptions options,
        IEnumerable<string> topics,
        ILogger? logger = null,
        TimeSpan? timeout = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(topics);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Partitions, 1);
        logger ??= NullLogger.Instance;
        var specifications = Specifications(topics, options.Partitions, options.ReplicationFactor);
        if (specifications.Count == 0)
        {
            return;
        }

        using var admin = new AdminClientBuilder(options.CreateAdminClientConfig("apm-topic-admin")).Build();
        try
        {
            // The AdminClient takes no CancellationToken; the request timeout bounds the wait instead.
            await admin.CreateTopicsAsync(specifications, new CreateTopicsOptions { RequestTimeout = timeout ?? TimeSpan.FromSeconds(30) })
                .WaitAsync(cancellationToken).ConfigureAwait(false);
            foreach (var specification in specifications)
            {
                logger.LogInformation("Kafka topic {Topic} created with {Partitions} partition(s)", specification.Name, specification.NumPartitions);
            }
        }
        catch (CreateTopicsException e)
        {
            var failed = e.Results.Where(r => r.Error.Code is not (ErrorCode.NoError or ErrorCode.TopicAlreadyExists)).ToList();
            foreach (var result in e.Results.Where(r => r.Error.Code == ErrorCode.TopicAlreadyExists))
            {
                logger.LogDebug("Kafka topic {Topic} exists already", result.Topic);
            }

            if (failed.Count > 0)
            {
                throw;
            }
        }
    }

    /// <summary>
    /// Creates <paramref name="topics"/> on the embedded cluster (direct calls, no network), replicated on
    /// min(3, brokers) brokers. Returns the topics that were created; existing ones are skipped.
    /// </summary>
    public static IReadOnlyList<string> EnsureTopics(EmbeddedKafkaCluster cluster, IEnumerable<string> topics, int partitions)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(topics);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        var replication = Math.Min(3, cluster.BrokerCount);
        var created = new List<string>();
        foreach (var topic in topics.Distinct(StringComparer.Ordinal))
        {
            if (cluster.TryCreateTopic(topic, partitions, replication))
            {
                created.Add(topic);
            }
        }

        return created;
    }

    private static List<TopicSpecification> Specifications(IEnumerable<string> topics, int partitions, short replication)
    {
        var specifications = new List<TopicSpecification>();
        foreach (var topic in topics.Distinct(StringComparer.Ordinal))
        {
            TopicNames.Validate(topic);
            specifications.Add(new TopicSpecification { Name = topic, NumPartitions = partitions, ReplicationFactor = replication });
        }

        return specifications;
    }
}
