using System.Collections.Concurrent;
using Confluent.Kafka;

namespace Apm.Kafka.Tests;

/// <summary>
/// One consumer-group member running the production pattern: a dedicated thread with a blocking Consume
/// loop, an offset stored only after the message is "processed" (recorded), and Close() on stop.
/// </summary>
internal sealed class GroupMember : IDisposable
{
    private readonly IConsumer<string, byte[]> _consumer;
    private readonly Thread _thread;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private List<int> _partitions = [];
    private volatile bool _closed;

    public GroupMember(KafkaOptions options, string groupId, string topic, string name)
    {
        Name = name;
        var config = options.CreateConsumerConfig(groupId, name);
        // The mock coordinator waits session.timeout.ms - 1 s before it completes a rebalance that a member's
        // LeaveGroup started (45 s with the default); a real broker completes it once the rest have rejoined.
        config.SessionTimeoutMs = 6_000;
        config.HeartbeatIntervalMs = 1_000;
        _consumer = new ConsumerBuilder<string, byte[]>(config)
            .SetPartitionsAssignedHandler((_, assigned) => SetPartitions(assigned.Select(p => p.Partition.Value)))
            .SetPartitionsRevokedHandler((_, _) => SetPartitions([]))
            .SetPartitionsLostHandler((_, _) => SetPartitions([]))
            .SetErrorHandler((_, e) => Errors.Enqueue(e.Reason))
            // Keeps librdkafka's expected complaints during broker outages off stderr; errors are kept above.
            .SetLogHandler((_, m) => Logs.Enqueue($"{m.Level} {m.Facility}: {m.Message}"))
            .Build();
        _consumer.Subscribe(topic);
        _thread = new Thread(Run) { IsBackground = true, Name = "consumer " + name };
        _thread.Start();
    }

    public string Name { get; }

    /// <summary>How long Close() blocked (it commits stored offsets and leaves the group).</summary>
    public TimeSpan CloseTime { get; private set; }

    /// <summary>Every message this member processed, in order (duplicates included).</summary>
    public ConcurrentQueue<ConsumeResult<string, byte[]>> Received { get; } = new();

    public ConcurrentQueue<string> Errors { get; } = new();

    public ConcurrentQueue<string> Logs { get; } = new();

    public Exception? Failure { get; private set; }

    /// <summary>The partitions assigned now (a snapshot).</summary>
    public IReadOnlyList<int> Partitions
    {
        get
        {
            lock (_gate)
            {
                return _partitions;
            }
        }
    }

    /// <summary>Stops the loop and leaves the group (Close commits the stored offsets and sends LeaveGroup).</summary>
    public void Close()
    {
        if (_closed)
        {
            return;
        }

        _closed = true;
        _stop.Cancel();
        _thread.Join();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        _consumer.Close();
        CloseTime = clock.Elapsed;
    }

    public void Dispose()
    {
        Close();
        _consumer.Dispose();
        _stop.Dispose();
    }

    public ConcurrentQueue<string> Events { get; } = new();

    private void SetPartitions(IEnumerable<int> partitions)
    {
        var sorted = partitions.Order().ToList();
        Events.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {Name} assigned [{string.Join(",", sorted)}]");
        lock (_gate)
        {
            _partitions = sorted;
        }
    }

    private void Run()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var result = _consumer.Consume(TimeSpan.FromMilliseconds(100));
                if (result is null)
                {
                    continue;
                }

                Received.Enqueue(result);
                _consumer.StoreOffset(result);
            }
        }
        catch (Exception e) when (e is KafkaException or InvalidOperationException)
        {
            Failure = e;
        }
    }
}
