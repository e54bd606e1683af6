using System.Runtime.InteropServices;
using Apm.Kafka.Native;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Apm.Kafka;

/// <summary>
/// An in-process Kafka cluster: librdkafka's mock cluster, which speaks the real Kafka wire protocol over
/// TCP, so Confluent.Kafka producers, consumer groups and admin clients (in this or other processes)
/// connect to <see cref="BootstrapServers"/> as to any broker. It is the single-node default and the
/// broker the tests use, including its fault injection (<see cref="SetBrokerDown"/>, <see cref="SetBrokerRtt"/>).
/// </summary>
/// <remarks>
/// <para>Network: every mock broker listens on 127.0.0.1 with an ephemeral port (librdkafka binds the loopback
/// address; a test checks /proc/net/tcp), so it is never reachable from another host and needs no free-port search.</para>
/// <para>Retention: messages live in memory only. Each partition keeps at most 5 MiB of record batches and at
/// most 100,000 batches (librdkafka's rdkafka_mock.c sets <c>mpart-&gt;max_size = 1024 * 1024 * 5</c> and
/// <c>mpart-&gt;max_cnt = 100000</c> in rd_kafka_mock_partition_init); past either limit the oldest batches are
/// dropped and the log start offset moves. Measured on 2.0.2: a partition fed 8 MiB of 1 KiB values kept the
/// newest 4,332 (4.24 MiB of payload). Neither limit can be changed: librdkafka 2.0.2 has no configuration
/// property for them (the library's only mock properties are <c>test.mock.num.brokers</c> and
/// <c>test.mock.broker.rtt</c>) and rdkafka_mock.h has no setter. The limit counts batch bytes as stored, i.e.
/// after compression, so compressed batches hold more messages. Give a topic enough partitions for the backlog
/// it must retain, and never rely on the embedded broker for durability.</para>
/// <para>Other limits of the mock in 2.0.2: it names no controller, so AdminClient.CreateTopics times out
/// ("Failed while waiting for controller"; use <see cref="CreateTopic"/>); and after a member's LeaveGroup its
/// group coordinator completes the rebalance only after the group's session.timeout.ms minus one second
/// (44 s with the default 45 s), where a real broker completes it as soon as the others rejoin.</para>
/// <para>Topics: clients auto-create an unknown topic with 4 partitions, so create topics explicitly with
/// <see cref="CreateTopic"/> before any client touches them.</para>
/// <para>Threading: all members are thread-safe (librdkafka posts each call to the cluster's own thread).</para>
/// </remarks>
public sealed class EmbeddedKafkaCluster : IDisposable
{
    /// <summary>Upper bound on brokers: each one is a thread and a listening socket.</summary>
    public const int MaxBrokers = 16;

    private const int ErrorBufferSize = 512;

    private readonly Lock _gate = new();
    private readonly ILogger _logger;
    private GCHandle _loggerHandle;
    private IntPtr _rk;
    private IntPtr _mcluster;

    private EmbeddedKafkaCluster(int brokers, ILogger logger, IntPtr rk, IntPtr mcluster, GCHandle loggerHandle)
    {
        BrokerCount = brokers;
        _logger = logger;
        _rk = rk;
        _mcluster = mcluster;
        _loggerHandle = loggerHandle;
        BootstrapServers = LibRdKafka.ReadString(LibRdKafka.MockClusterBootstraps(mcluster));
    }

    /// <summary>Comma-separated host:port list of all brokers (127.0.0.1 and ephemeral ports).</summary>
    public string BootstrapServers { get; }

    /// <summary>Number of brokers; their ids run from 1 to <see cref="BrokerCount"/>.</summary>
    public int BrokerCount { get; }

    /// <summary>The librdkafka version that hosts the cluster, e.g. "2.0.2".</summary>
    public static string LibrdkafkaVersion
    {
        get
        {
            LibRdKafka.EnsureResolver();
            return LibRdKafka.ReadString(LibRdKafka.VersionStr());
        }
    }

    /// <summary>
    /// Starts a mock cluster of <paramref name="brokers"/> brokers. Costs a few milliseconds and one thread
    /// per broker plus the hosting handle's threads. librdkafka's log lines go to <paramref name="logger"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">brokers is not between 1 and <see cref="MaxBrokers"/>.</exception>
    /// <exception cref="InvalidOperationException">librdkafka refused to create the handle or the cluster.</exception>
    public static EmbeddedKafkaCluster Start(int brokers = 1, ILogger? logger = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(brokers, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(brokers, MaxBrokers);
        LibRdKafka.EnsureResolver();
        logger ??= NullLogger.Instance;

        var loggerHandle = GCHandle.Alloc(logger);
        var rk = IntPtr.Zero;
        try
        {
            rk = CreateHostingHandle(loggerHandle);
            var mcluster = LibRdKafka.MockClusterNew(rk, brokers);
            if (mcluster == IntPtr.Zero)
            {
                throw new InvalidOperationException(
                    $"rd_kafka_mock_cluster_new failed for {brokers} broker(s); librdkafka's log has the reason.");
            }

            var cluster = new EmbeddedKafkaCluster(brokers, logger, rk, mcluster, loggerHandle);
            logger.LogInformation(
                "Embedded Kafka cluster started: {Brokers} broker(s) at {BootstrapServers} (librdkafka {Version})",
                brokers, cluster.BootstrapServers, LibrdkafkaVersion);
            return cluster;
        }
        catch
        {
            if (rk != IntPtr.Zero)
            {
                LibRdKafka.Destroy(rk);
            }

            loggerHandle.Free();
            throw;
        }
    }

    /// <summary>
    /// Creates a topic with an explicit partition count (clients would otherwise auto-create it with 4).
    /// Leaders and replicas are spread over the brokers; replication may not exceed the broker count.
    /// </summary>
    /// <exception cref="ArgumentException">The name is not a legal Kafka topic name.</exception>
    /// <exception cref="ArgumentOutOfRangeException">partitions &lt; 1, or replication not in 1..BrokerCount.</exception>
    /// <exception cref="InvalidOperationException">The topic exists already, or the cluster refused it.</exception>
    public void CreateTopic(string name, int partitions, int replicationFactor = 1)
    {
        TopicNames.Validate(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(replicationFactor, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(replicationFactor, BrokerCount);
        lock (_gate)
        {
            var err = LibRdKafka.MockTopicCreate(Cluster(), name, partitions, replicationFactor);
            ThrowOnError(err, $"create topic '{name}' with {partitions} partition(s) and replication {replicationFactor}");
        }

        _logger.LogDebug("Embedded Kafka topic {Topic} created with {Partitions} partition(s)", name, partitions);
    }

    /// <summary>
    /// Creates the topic unless it exists. Returns true when it was created. A topic that a client
    /// auto-created first keeps its 4 partitions: call this before clients start.
    /// </summary>
    public bool TryCreateTopic(string name, int partitions, int replicationFactor = 1)
    {
        try
        {
            CreateTopic(name, partitions, replicationFactor);
            return true;
        }
        catch (KafkaMockException e) when (e.ErrorCode == ErrorCode.TopicAlreadyExists)
        {
            return false;
        }
    }

    /// <summary>
    /// Takes broker <paramref name="brokerId"/> (1-based) down: it closes its connections and refuses new
    /// ones, while its partitions keep their leader, so clients retry until <see cref="SetBrokerUp"/>.
    /// </summary>
    public void SetBrokerDown(int brokerId)
    {
        CheckBroker(brokerId);
        lock (_gate)
        {
            ThrowOnError(LibRdKafka.MockBrokerSetDown(Cluster(), brokerId), $"set broker {brokerId} down");
        }

        _logger.LogInformation("Embedded Kafka broker {BrokerId} set down", brokerId);
    }

    /// <summary>Brings broker <paramref name="brokerId"/> (1-based) back up.</summary>
    public void SetBrokerUp(int brokerId)
    {
        CheckBroker(brokerId);
        lock (_gate)
        {
            ThrowOnError(LibRdKafka.MockBrokerSetUp(Cluster(), brokerId), $"set broker {brokerId} up");
        }

        _logger.LogInformation("Embedded Kafka broker {BrokerId} set up", brokerId);
    }

    /// <summary>Delays every response of broker <paramref name="brokerId"/> by <paramref name="rtt"/> (zero removes the delay).</summary>
    public void SetBrokerRtt(int brokerId, TimeSpan rtt)
    {
        CheckBroker(brokerId);
        ArgumentOutOfRangeException.ThrowIfLessThan(rtt, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rtt, TimeSpan.FromMilliseconds(int.MaxValue));
        lock (_gate)
        {
            ThrowOnError(
                LibRdKafka.MockBrokerSetRtt(Cluster(), brokerId, (int)rtt.TotalMilliseconds),
                $"set broker {brokerId} round-trip time");
        }
    }

    /// <summary>
    /// Makes broker <paramref name="brokerId"/> the coordinator of consumer group <paramref name="groupId"/>
    /// (by default the mock picks one by hashing the id), so a test can take exactly that broker down.
    /// </summary>
    public void SetGroupCoordinator(string groupId, int brokerId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(groupId);
        CheckBroker(brokerId);
        lock (_gate)
        {
            ThrowOnError(LibRdKafka.MockCoordinatorSet(Cluster(), "group", groupId, brokerId), $"make broker {brokerId} coordinator of group '{groupId}'");
        }
    }

    /// <summary>
    /// Destroys the cluster (its brokers close every connection; clients see the brokers as down) and then
    /// the hosting handle. Blocks until librdkafka's threads have stopped, typically well under a second.
    /// </summary>
    public void Dispose()
    {
        IntPtr rk, mcluster;
        lock (_gate)
        {
            (rk, _rk) = (_rk, IntPtr.Zero);
            (mcluster, _mcluster) = (_mcluster, IntPtr.Zero);
        }

        if (rk == IntPtr.Zero)
        {
            return;
        }

        var clock = System.Diagnostics.Stopwatch.StartNew();
        // Order matters: the cluster uses the handle's queues, so it goes first.
        LibRdKafka.MockClusterDestroy(mcluster);
        var clusterTime = clock.ElapsedMilliseconds;
        LibRdKafka.Destroy(rk);
        // Only now no librdkafka thread can call the log callback with this handle as opaque.
        _loggerHandle.Free();
        _logger.LogInformation(
            "Embedded Kafka cluster at {BootstrapServers} stopped in {ClusterMs} ms + {HandleMs} ms",
            BootstrapServers, clusterTime, clock.ElapsedMilliseconds - clusterTime);
    }

    private static unsafe IntPtr CreateHostingHandle(GCHandle loggerHandle)
    {
        var conf = LibRdKafka.ConfNew();
        var errstr = stackalloc byte[ErrorBufferSize];
        try
        {
            // The handle never talks to a broker; "client.id" only labels its log lines.
            SetConf(conf, "client.id", "apm-embedded-kafka", errstr);
            LibRdKafka.ConfSetOpaque(conf, GCHandle.ToIntPtr(loggerHandle));
            LibRdKafka.ConfSetLogCb(conf, &OnLog);
            var rk = LibRdKafka.New(LibRdKafka.ProducerType, conf, errstr, ErrorBufferSize);
            if (rk == IntPtr.Zero)
            {
                throw new InvalidOperationException("rd_kafka_new failed: " + Utf8(errstr));
            }

            conf = IntPtr.Zero; // owned by rk now
            return rk;
        }
        finally
        {
            if (conf != IntPtr.Zero)
            {
                LibRdKafka.ConfDestroy(conf);
            }
        }
    }

    private static unsafe void SetConf(IntPtr conf, string name, string value, byte* errstr)
    {
        if (LibRdKafka.ConfSet(conf, name, value, errstr, ErrorBufferSize) != LibRdKafka.ConfOk)
        {
            throw new InvalidOperationException($"rd_kafka_conf_set({name}) failed: {Utf8(errstr)}");
        }
    }

    private static unsafe string Utf8(byte* s) => Marshal.PtrToStringUTF8((IntPtr)s) ?? string.Empty;

    /// <summary>librdkafka's log_cb: runs on librdkafka's threads, so it must not throw.</summary>
    [UnmanagedCallersOnly]
    private static unsafe void OnLog(IntPtr rk, int level, byte* facility, byte* message)
    {
        try
        {
            var opaque = LibRdKafka.Opaque(rk);
            if (opaque == IntPtr.Zero || GCHandle.FromIntPtr(opaque).Target is not ILogger logger)
            {
                return;
            }

            // syslog levels: 0-3 emergency..error, 4 warning, 5-6 notice/info, 7 debug.
            var logLevel = level switch
            {
                <= 3 => LogLevel.Error,
                4 => LogLevel.Warning,
                5 or 6 => LogLevel.Information,
                _ => LogLevel.Debug,
            };
            var text = Utf8(message);
            // The hosting handle has no bootstrap.servers on purpose: it never connects anywhere.
            if (text.Contains("No `bootstrap.servers` configured", StringComparison.Ordinal))
            {
                logLevel = LogLevel.Debug;
            }

            if (logger.IsEnabled(logLevel))
            {
                logger.Log(logLevel, "librdkafka {Facility}: {Message}", Utf8(facility), text);
            }
        }
#pragma warning disable CA1031 // An exception must never unwind into native code.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    private IntPtr Cluster()
    {
        ObjectDisposedException.ThrowIf(_mcluster == IntPtr.Zero, this);
        return _mcluster;
    }

    private void CheckBroker(int brokerId)
    {
        if (brokerId < 1 || brokerId > BrokerCount)
        {
            throw new ArgumentOutOfRangeException(
                nameof(brokerId), brokerId, $"Broker ids of this cluster run from 1 to {BrokerCount}.");
        }
    }

    private static void ThrowOnError(int err, string what)
    {
        if (err != 0)
        {
            throw new KafkaMockException((ErrorCode)err, $"Embedded Kafka could not {what}: {LibRdKafka.ErrorText(err)} (error {err}).");
        }
    }
}

/// <summary>A mock-cluster call that librdkafka answered with an error code.</summary>
public sealed class KafkaMockException : InvalidOperationException
{
    /// <summary>Creates the exception for librdkafka's error <paramref name="errorCode"/>.</summary>
    public KafkaMockException(ErrorCode errorCode, string message)
        : base(message) => ErrorCode = errorCode;

    /// <summary>librdkafka's rd_kafka_resp_err_t, which Confluent.Kafka's ErrorCode mirrors value for value.</summary>
    public ErrorCode ErrorCode { get; }
}
