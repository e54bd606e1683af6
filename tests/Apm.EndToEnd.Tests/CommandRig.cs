using Apm.Collector;
using Apm.Collector.Commands;
using Apm.Kafka;
using Apm.Protocol.V1;
using Confluent.Kafka;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Apm.EndToEnd.Tests;

/// <summary>
/// Real collectors on a real (mock-cluster) Kafka for the heap-dump command tests: commands go in through the commands
/// topic, and the collectors' samples, JVM statuses and command results are read back from the samples topic, as an
/// aggregator reads them. Each collector has its own host name (so its own commands and JVM ids) and watches every JVM
/// of this machine.
/// </summary>
internal sealed class CommandRig : IAsyncDisposable
{
    private readonly EmbeddedKafkaCluster? _ownKafka;
    private readonly IProducer<string, byte[]> _producer;
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _reader;
    private readonly List<CollectorService> _collectors = [];
    private readonly object _gate = new();
    private readonly Dictionary<string, int> _samples = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Host, int Pid), JvmIdentity> _jvms = [];
    private readonly HashSet<string> _gone = new(StringComparer.Ordinal);
    private readonly List<CommandResult> _results = [];
    private bool _disposed;

    private CommandRig(KafkaOptions kafka, EmbeddedKafkaCluster? ownKafka)
    {
        Kafka = kafka;
        _ownKafka = ownKafka;
        _producer = new ProducerBuilder<string, byte[]>(kafka.CreateProducerConfig()).Build();
        var config = kafka.CreateConsumerConfig("command-rig-" + Guid.NewGuid().ToString("N"));
        config.AutoOffsetReset = AutoOffsetReset.Earliest;
        var consumer = new ConsumerBuilder<string, byte[]>(config).Build();
        consumer.Subscribe(ApmTopics.Samples);
        _reader = new Thread(() => Read(consumer)) { IsBackground = true, Name = "command-rig-reader" };
        _reader.Start();
    }

    public KafkaOptions Kafka { get; }

    /// <summary>A rig on <paramref name="kafka"/>, or on a mock cluster of its own.</summary>
    public static CommandRig Start(KafkaOptions? kafka = null)
    {
        if (kafka is not null) return new CommandRig(kafka, null);
        var cluster = EmbeddedKafkaCluster.Start();
        TopicAdmin.EnsureTopics(cluster, ApmTopics.All, partitions: 6);
        var options = new KafkaOptions { Partitions = 6 }.WithBootstrapServers(cluster.BootstrapServers);
        options.Extra["session.timeout.ms"] = "10000";
        options.Extra["heartbeat.interval.ms"] = "1000";
        return new CommandRig(options, cluster);
    }

    /// <summary>Starts a collector (counters every second) and waits until it listens for commands.</summary>
    public async Task<CollectorService> StartCollectorAsync(string host, HeapDumpOptions heapDump, TimeSpan? finalizerInterval = null)
    {
        var collector = new CollectorService(
            Options.Create(new CollectorOptions
            {
                SampleInterval = TimeSpan.FromSeconds(1),
                FinalizerInterval = finalizerInterval ?? TimeSpan.Zero,
                HistogramInterval = TimeSpan.Zero,
                HostName = host,
                HeapDump = heapDump,
            }),
            Options.Create(Kafka), new CollectorMetrics(), NullLogger<CollectorService>.Instance);
        _collectors.Add(collector);
        await collector.StartAsync(CancellationToken.None);
        Assert.True(await Pipeline.EventuallyAsync(() => Task.FromResult(collector.CommandsReady), TimeSpan.FromSeconds(60)), $"the command listener of {host} never got its partitions");
        return collector;
    }

    /// <summary>The identity a collector on <paramref name="host"/> gives JVM <paramref name="pid"/>, once its first sample arrived.</summary>
    public async Task<JvmIdentity> JvmAsync(string host, int pid)
    {
        JvmIdentity? jvm = null;
        Assert.True(await Pipeline.EventuallyAsync(() =>
        {
            lock (_gate) jvm = _jvms.GetValueOrDefault((host, pid));
            return Task.FromResult(jvm is not null);
        }, TimeSpan.FromSeconds(60)), $"no sample of JVM {pid} from the collector of {host}");
        return jvm!;
    }

    /// <summary>Sends a heap-dump command for <paramref name="jvm"/> on the commands topic.</summary>
    public CollectorCommand Send(JvmIdentity jvm, TimeSpan? expiresIn = null, string trigger = "cli")
    {
        var command = CollectorCommand.ForHeapDump(jvm.JvmId, jvm.Host, expiresIn ?? TimeSpan.FromMinutes(5), trigger, "test");
        _producer.Produce(ApmTopics.Commands, new Message<string, byte[]> { Key = command.TargetHost, Value = command.ToByteArray() });
        _producer.Flush(TimeSpan.FromSeconds(10));
        return command;
    }

    /// <summary>The results of one command that arrived so far, in the order the collector sent them.</summary>
    public IReadOnlyList<CommandResult> Results(string commandId)
    {
        lock (_gate) return _results.Where(r => r.CommandId == commandId).OrderBy(r => r.TimeUnixNanos).ToList();
    }

    /// <summary>Results of every command whose trigger is <paramref name="trigger"/>.</summary>
    public IReadOnlyList<CommandResult> ResultsTriggeredBy(string trigger)
    {
        lock (_gate) return _results.Where(r => r.Trigger == trigger).OrderBy(r => r.TimeUnixNanos).ToList();
    }

    /// <summary>Waits for a result of <paramref name="commandId"/> that matches; fails with every result so far.</summary>
    public async Task<CommandResult> WaitForAsync(string commandId, Func<CommandResult, bool> match, string what, TimeSpan? timeout = null)
    {
        CommandResult? found = null;
        var ok = await Pipeline.EventuallyAsync(() =>
        {
            found = Results(commandId).FirstOrDefault(match);
            return Task.FromResult(found is not null);
        }, timeout ?? TimeSpan.FromMinutes(3));
        Assert.True(ok, $"command {commandId}: no result {what}; results: {Describe(commandId)}");
        return found!;
    }

    /// <summary>Waits for the command's last result (done or failed).</summary>
    public Task<CommandResult> FinalAsync(string commandId) =>
        WaitForAsync(commandId, r => r.State is CommandResult.Types.State.Done or CommandResult.Types.State.Failed, "done or failed");

    /// <summary>The states and reasons of a command's results, for assertion messages.</summary>
    public string Describe(string commandId) =>
        string.Join(" | ", Results(commandId).Select(r => $"{r.State} {r.Failure} {r.Reason}".Trim()));

    /// <summary>
    /// Asserts that the collectors go on sampling each JVM: every one gets <paramref name="more"/> samples beyond those
    /// that had arrived when this was called.
    /// </summary>
    public async Task SamplingGoesOnAsync(string when, params JvmIdentity[] jvms)
    {
        const int more = 2;
        Dictionary<string, int> before;
        lock (_gate) before = jvms.ToDictionary(j => j.JvmId, j => _samples.GetValueOrDefault(j.JvmId), StringComparer.Ordinal);
        var ok = await Pipeline.EventuallyAsync(() =>
        {
            lock (_gate) return Task.FromResult(jvms.All(j => _samples.GetValueOrDefault(j.JvmId) >= before[j.JvmId] + more));
        }, TimeSpan.FromSeconds(60));
        string counts;
        lock (_gate) counts = string.Join(", ", jvms.Select(j => $"{j.JvmId}: {before[j.JvmId]} -> {_samples.GetValueOrDefault(j.JvmId)}"));
        Assert.True(ok, $"sampling stopped {when}: {counts}");
    }

    /// <summary>Waits until a collector reported <paramref name="jvm"/> gone (its process exited).</summary>
    public async Task WaitGoneAsync(JvmIdentity jvm)
    {
        Assert.True(await Pipeline.EventuallyAsync(() =>
        {
            lock (_gate) return Task.FromResult(_gone.Contains(jvm.JvmId));
        }, TimeSpan.FromSeconds(60)), $"the collector never reported {jvm.JvmId} gone");
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var c in _collectors)
        {
            await c.StopAsync(CancellationToken.None);
            c.Dispose();
        }

        await _stop.CancelAsync();
        _reader.Join(TimeSpan.FromSeconds(30));
        _producer.Dispose();
        _stop.Dispose();
        _ownKafka?.Dispose();
    }

    private void Read(IConsumer<string, byte[]> consumer)
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var r = consumer.Consume(TimeSpan.FromMilliseconds(200));
                if (r?.Message?.Value is not { } value) continue;
                var message = CollectorMessage.Parser.ParseFrom(value);
                lock (_gate)
                {
                    switch (message.BodyCase)
                    {
                        case CollectorMessage.BodyOneofCase.Sample:
                            _samples[message.Sample.Jvm.JvmId] = _samples.GetValueOrDefault(message.Sample.Jvm.JvmId) + 1;
                            _jvms[(message.Sample.Jvm.Host, message.Sample.Jvm.Pid)] = message.Sample.Jvm;
                            break;
                        case CollectorMessage.BodyOneofCase.Status when message.Status.State == JvmStatus.Types.State.Gone:
                            _gone.Add(message.Status.Jvm.JvmId);
                            break;
                        case CollectorMessage.BodyOneofCase.CommandResult:
                            _results.Add(message.CommandResult);
                            break;
                    }
                }
            }
        }
        finally
        {
            consumer.Close();
            consumer.Dispose();
        }
    }
}
