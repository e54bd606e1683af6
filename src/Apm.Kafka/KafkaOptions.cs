using System.Globalization;
using Confluent.Kafka;

namespace Apm.Kafka;

/// <summary>
/// Kafka settings, bound from the configuration section <see cref="SectionName"/>. Builds the Confluent
/// client configurations so that every component produces and consumes the same way.
/// </summary>
/// <remarks>
/// Secrets (<see cref="SaslPassword"/>, and whatever <see cref="Extra"/> holds) are passed to librdkafka and
/// never logged: <see cref="ToString"/> prints only non-secret settings and the names of extra properties.
/// </remarks>
public sealed class KafkaOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "Kafka";

    /// <summary>
    /// Comma-separated host:port list of a real cluster. Empty means "start the embedded cluster" (librdkafka's
    /// mock cluster on 127.0.0.1; see <see cref="KafkaRuntime"/>).
    /// </summary>
    public string BootstrapServers { get; set; } = string.Empty;

    /// <summary>Brokers of the embedded cluster when <see cref="BootstrapServers"/> is empty.</summary>
    public int EmbeddedBrokers { get; set; } = 1;

    /// <summary>Partitions of each topic that Apm creates (it never changes an existing topic).</summary>
    public int Partitions { get; set; } = ApmTopics.DefaultPartitions;

    /// <summary>
    /// Replication of topics created on a real cluster; -1 takes the broker's default.replication.factor.
    /// The embedded cluster uses min(3, brokers).
    /// </summary>
    public short ReplicationFactor { get; set; } = -1;

    /// <summary>security.protocol (plaintext when unset).</summary>
    public SecurityProtocol? SecurityProtocol { get; set; }

    /// <summary>sasl.mechanism.</summary>
    public SaslMechanism? SaslMechanism { get; set; }

    /// <summary>sasl.username.</summary>
    public string? SaslUsername { get; set; }

    /// <summary>sasl.password: a secret, never logged.</summary>
    public string? SaslPassword { get; set; }

    /// <summary>ssl.ca.location: a CA bundle to trust the brokers' certificates.</summary>
    public string? SslCaLocation { get; set; }

    /// <summary>
    /// Any librdkafka property (e.g. "socket.keepalive.enable"), applied last to producer, consumer and admin
    /// configurations, so it overrides the defaults here. Properties only consumers use (group and fetch settings such
    /// as "session.timeout.ms") are not given to producers and admin clients, and producer-only ones ("linger.ms",
    /// "acks", ...) not to consumers and admin clients, so librdkafka does not warn about them (CONFWARN) on every start.
    /// A property name librdkafka does not know at all fails client creation.
    /// </summary>
    public IDictionary<string, string> Extra { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>True when no bootstrap servers are configured, so the embedded cluster is meant.</summary>
    public bool UsesEmbeddedCluster => string.IsNullOrWhiteSpace(BootstrapServers);

    /// <summary>
    /// The producer settings every Apm producer uses: idempotent (no duplicates or reordering from retries,
    /// which implies acks=all, unlimited retries and at most 5 requests in flight), lz4 compression, and
    /// batches of up to 20 ms.
    /// </summary>
    /// <remarks>
    /// lz4 rather than zstd: both work with librdkafka 2.0.2 and the embedded cluster (a test round-trips every
    /// codec), but lz4 costs the collector hosts less CPU, and zstd needs brokers of Kafka 2.1 or newer.
    /// </remarks>
    /// <exception cref="InvalidOperationException"><see cref="BootstrapServers"/> is empty.</exception>
    public ProducerConfig CreateProducerConfig(string? clientId = null)
    {
        var config = new ProducerConfig
        {
            EnableIdempotence = true,
            Acks = Acks.All,
            CompressionType = CompressionType.Lz4,
            LingerMs = 20,
            BatchNumMessages = 10_000,
            // Caps the memory a producer queues while brokers are unreachable; Produce then throws
            // Local_QueueFull, which callers count as a drop instead of growing without bound.
            QueueBufferingMaxKbytes = 64 * 1024,
            // How long a message may wait for delivery (including retries) before its report says failed.
            MessageTimeoutMs = 120_000,
        };
        Apply(config, clientId, ProducerOnly);
        return config;
    }

    /// <summary>
    /// Consumer settings for at-least-once processing in a consumer group: offsets are committed
    /// automatically in the background (every second), but only offsets the application stored with
    /// <c>consumer.StoreOffset(result)</c> after its work is durable (Confluent's recommended pattern:
    /// EnableAutoCommit=true, EnableAutoOffsetStore=false). Call <c>Close()</c> on shutdown so the last stored
    /// offsets are committed and the group rebalances at once. A new group starts at the earliest offset.
    /// </summary>
    /// <remarks>
    /// On the embedded cluster a rebalance after a member leaves waits session.timeout.ms minus 1 s (librdkafka's
    /// default 45 s); set "session.timeout.ms" in <see cref="Extra"/> (e.g. 10000) where faster takeover matters.
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="groupId"/> is empty.</exception>
    /// <exception cref="InvalidOperationException"><see cref="BootstrapServers"/> is empty.</exception>
    public ConsumerConfig CreateConsumerConfig(string groupId, string? clientId = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(groupId);
        var config = new ConsumerConfig
        {
            GroupId = groupId,
            EnableAutoCommit = true,
            AutoCommitIntervalMs = 1_000,
            EnableAutoOffsetStore = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnablePartitionEof = false,
            // Bounds the memory of prefetched messages per consumer (librdkafka's default is 64 MiB per partition).
            QueuedMaxMessagesKbytes = 16 * 1024,
        };
        Apply(config, clientId, ConsumerOnly);
        return config;
    }

    /// <summary>Settings for an AdminClient on the same cluster.</summary>
    /// <exception cref="InvalidOperationException"><see cref="BootstrapServers"/> is empty.</exception>
    public AdminClientConfig CreateAdminClientConfig(string? clientId = null)
    {
        var config = new AdminClientConfig();
        Apply(config, clientId, null);
        return config;
    }

    /// <summary>A copy of these options that points at <paramref name="bootstrapServers"/> (e.g. the embedded cluster's).</summary>
    public KafkaOptions WithBootstrapServers(string bootstrapServers)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(bootstrapServers);
        var copy = new KafkaOptions
        {
            BootstrapServers = bootstrapServers,
            EmbeddedBrokers = EmbeddedBrokers,
            Partitions = Partitions,
            ReplicationFactor = ReplicationFactor,
            SecurityProtocol = SecurityProtocol,
            SaslMechanism = SaslMechanism,
            SaslUsername = SaslUsername,
            SaslPassword = SaslPassword,
            SslCaLocation = SslCaLocation,
        };
        foreach (var (key, value) in Extra)
        {
            copy.Extra[key] = value;
        }

        return copy;
    }

    /// <summary>Non-secret settings, for logs: the password and extra values are left out.</summary>
    public override string ToString() =>
        string.Create(
            CultureInfo.InvariantCulture,
            $"BootstrapServers={(UsesEmbeddedCluster ? "(embedded)" : BootstrapServers)}, EmbeddedBrokers={EmbeddedBrokers}, " +
            $"Partitions={Partitions}, ReplicationFactor={ReplicationFactor}, SecurityProtocol={SecurityProtocol?.ToString() ?? "(default)"}, " +
            $"SaslMechanism={SaslMechanism?.ToString() ?? "(none)"}, SaslUsername={(SaslUsername is null ? "(none)" : "(set)")}, " +
            $"SaslPassword={(SaslPassword is null ? "(none)" : "(set)")}, SslCaLocation={SslCaLocation ?? "(none)"}, " +
            $"Extra=[{string.Join(", ", Extra.Keys.Order(StringComparer.Ordinal))}]");

    /// <summary>librdkafka properties marked for consumers only ("C" in its CONFIGURATION.md) that operators set here.</summary>
    private static readonly HashSet<string> ConsumerOnly = new(StringComparer.Ordinal)
    {
        "group.id", "group.instance.id", "partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms",
        "max.poll.interval.ms", "enable.auto.commit", "auto.commit.interval.ms", "enable.auto.offset.store",
        "auto.offset.reset", "isolation.level", "fetch.wait.max.ms", "fetch.min.bytes", "fetch.max.bytes",
        "max.partition.fetch.bytes", "fetch.message.max.bytes", "queued.min.messages", "queued.max.messages.kbytes",
        "enable.partition.eof", "check.crcs",
    };

    /// <summary>librdkafka properties marked for producers only ("P" in its CONFIGURATION.md) that operators set here.</summary>
    private static readonly HashSet<string> ProducerOnly = new(StringComparer.Ordinal)
    {
        "acks", "request.required.acks", "linger.ms", "queue.buffering.max.ms", "queue.buffering.max.messages",
        "queue.buffering.max.kbytes", "batch.num.messages", "batch.size", "compression.type", "compression.codec",
        "compression.level", "enable.idempotence", "message.timeout.ms", "delivery.timeout.ms", "transactional.id",
        "message.send.max.retries", "retries", "request.timeout.ms", "partitioner",
    };

    /// <summary>Common settings, then <see cref="Extra"/> except the properties of the other client type (null: of either).</summary>
    private void Apply(ClientConfig config, string? clientId, HashSet<string>? ownKind)
    {
        if (UsesEmbeddedCluster)
        {
            throw new InvalidOperationException(
                "Kafka BootstrapServers is empty, which means the embedded cluster: start it with KafkaRuntime.Start " +
                "and use the options it returns.");
        }

        config.BootstrapServers = BootstrapServers;
        if (clientId is not null)
        {
            config.ClientId = clientId;
        }

        if (SecurityProtocol is { } protocol)
        {
            config.SecurityProtocol = protocol;
        }

        if (SaslMechanism is { } mechanism)
        {
            config.SaslMechanism = mechanism;
        }

        if (SaslUsername is not null)
        {
            config.SaslUsername = SaslUsername;
        }

        if (SaslPassword is not null)
        {
            config.SaslPassword = SaslPassword;
        }

        if (SslCaLocation is not null)
        {
            config.SslCaLocation = SslCaLocation;
        }

        foreach (var (key, value) in Extra)
        {
            var consumerOnly = ConsumerOnly.Contains(key);
            var producerOnly = ProducerOnly.Contains(key);
            if ((consumerOnly || producerOnly) && (ownKind is null || !ownKind.Contains(key)))
            {
                continue;
            }

            config.Set(key, value);
        }
    }
}
