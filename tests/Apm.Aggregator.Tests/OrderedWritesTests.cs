using Apm.Influx;
using Confluent.Kafka;

namespace Apm.Aggregator.Tests;

public sealed class OrderedWritesTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    /// <summary>A write per call that completes (or fails) when the test says so.</summary>
    private sealed class ControlledWrites
    {
        private readonly List<(string Lines, TaskCompletionSource Done)> _calls = [];

        public int Calls
        {
            get
            {
                lock (_calls) return _calls.Count;
            }
        }

        public Task Write(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
        {
            var lines = System.Text.Encoding.UTF8.GetString(bytes.Span);
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            cancellationToken.Register(() => done.TrySetCanceled(cancellationToken));
            lock (_calls) _calls.Add((lines, done));
            return done.Task;
        }

        /// <summary>The <paramref name="n"/>th call (0-based) once it has been made.</summary>
        public TaskCompletionSource Call(int n)
        {
            var deadline = DateTime.UtcNow + Wait;
            while (DateTime.UtcNow < deadline)
            {
                lock (_calls)
                {
                    if (_calls.Count > n) return _calls[n].Done;
                }

                Thread.Sleep(5);
            }

            throw new TimeoutException($"write call {n} was never made");
        }

        /// <summary>The <paramref name="nth"/> call (0-based) that wrote <paramref name="lines"/>, once it has been made.</summary>
        public TaskCompletionSource CallWith(string lines, int nth = 0)
        {
            var deadline = DateTime.UtcNow + Wait;
            while (DateTime.UtcNow < deadline)
            {
                lock (_calls)
                {
                    var matching = _calls.Where(c => c.Lines == lines).ToList();
                    if (matching.Count > nth) return matching[nth].Done;
                }

                Thread.Sleep(5);
            }

            throw new TimeoutException($"no call {nth} wrote '{lines}'");
        }

        public string Lines(int n)
        {
            Call(n);
            lock (_calls) return _calls[n].Lines;
        }
    }

    private static TopicPartitionOffset Offset(int partition, long offset) => new("samples", new Partition(partition), new Offset(offset));

    private static void WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("condition never held");
            Thread.Sleep(5);
        }
    }

    private static string Describe(IEnumerable<TopicPartitionOffset> offsets) =>
        string.Join(",", offsets.OrderBy(o => o.Partition.Value).Select(o => $"{o.Partition.Value}@{o.Offset.Value}"));

    [Fact]
    public void A_later_batch_stored_first_is_not_acknowledged_until_every_earlier_one_is()
    {
        var io = new ControlledWrites();
        using var writes = new OrderedWrites(io.Write, 3, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1));
        writes.Submit(PooledUtf8.Encode("a"), 1, [Offset(0, 10), Offset(1, 5)]);
        writes.Submit(PooledUtf8.Encode("b"), 1, [Offset(0, 20)]);
        writes.Submit(PooledUtf8.Encode("c"), 1, [Offset(2, 7)]);
        Assert.True(writes.IsFull);

        io.Call(2).SetResult();
        io.Call(1).SetResult();
        Thread.Sleep(50);
        Assert.Empty(writes.TakeStoredOffsets());
        Assert.Equal(3, writes.Count);

        io.Call(0).SetResult();
        Assert.True(writes.WaitForOldest(Wait, CancellationToken.None));

        // All three at once, merged to the highest offset per partition.
        Assert.Equal("0@20,1@5,2@7", Describe(writes.TakeStoredOffsets()));
        Assert.Equal(0, writes.Count);
    }

    [Fact]
    public void A_failing_batch_is_retried_and_holds_back_the_stored_ones_behind_it()
    {
        var io = new ControlledWrites();
        var failures = 0;
        using var writes = new OrderedWrites(io.Write, 2, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(4),
            onFailure: (_, _, _) => Interlocked.Increment(ref failures));
        writes.Submit(PooledUtf8.Encode("first"), 1, [Offset(0, 10)]);
        writes.Submit(PooledUtf8.Encode("second"), 1, [Offset(0, 20)]);

        io.Call(1).SetResult();
        io.Call(0).SetException(new IOException("InfluxDB down"));
        io.Call(2).SetException(new IOException("still down"));
        Assert.Equal("first", io.Lines(2));
        Assert.Equal("first", io.Lines(3));
        Assert.False(writes.WaitForOldest(TimeSpan.FromMilliseconds(50), CancellationToken.None));
        Assert.Empty(writes.TakeStoredOffsets());
        Assert.Equal(2, Volatile.Read(ref failures));

        io.Call(3).SetResult();
        Assert.True(writes.WaitForOldest(Wait, CancellationToken.None));
        Assert.Equal("0@20", Describe(writes.TakeStoredOffsets()));
        Assert.Equal(0, writes.Count);
        Assert.Equal(4, io.Calls);
    }

    [Fact]
    public void Only_the_stored_prefix_is_taken_and_the_rest_waits_in_order()
    {
        var io = new ControlledWrites();
        using var writes = new OrderedWrites(io.Write, 3, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1));
        writes.Submit(PooledUtf8.Encode("a"), 1, [Offset(0, 10)]);
        writes.Submit(PooledUtf8.Encode("b"), 1, [Offset(1, 3)]);
        writes.Submit(PooledUtf8.Encode("c"), 1, [Offset(0, 30)]);
        io.Call(0).SetResult();
        io.Call(2).SetResult();
        Assert.True(writes.WaitForOldest(Wait, CancellationToken.None));
        Assert.Equal("0@10", Describe(writes.TakeStoredOffsets()));
        Assert.Equal(2, writes.Count);
        Assert.False(writes.IsFull);

        io.Call(1).SetResult();
        Assert.True(writes.WaitForOldest(Wait, CancellationToken.None));
        var taken = new List<TopicPartitionOffset>();
        WaitUntil(() =>
        {
            taken.AddRange(writes.TakeStoredOffsets());
            return writes.Count == 0;
        });
        Assert.Equal("0@30,1@3", Describe(taken.GroupBy(o => o.Partition.Value).Select(g => g.MaxBy(o => o.Offset.Value)!)));
    }

    [Fact]
    public void A_batch_of_dead_letters_only_writes_nothing_but_keeps_its_place()
    {
        var io = new ControlledWrites();
        using var writes = new OrderedWrites(io.Write, 2, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1));
        writes.Submit(PooledUtf8.Encode("a"), 1, [Offset(0, 10)]);
        writes.Submit(null, 0, [Offset(0, 11)]);
        Assert.Empty(writes.TakeStoredOffsets());
        io.Call(0).SetResult();
        Assert.True(writes.WaitForOldest(Wait, CancellationToken.None));
        Assert.Equal("0@11", Describe(writes.TakeStoredOffsets()));
        Assert.Equal(1, io.Calls);
    }

    [Fact]
    public void Lost_partitions_are_never_acknowledged_but_the_others_are()
    {
        var io = new ControlledWrites();
        using var writes = new OrderedWrites(io.Write, 2, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1));
        writes.Submit(PooledUtf8.Encode("a"), 1, [Offset(0, 10), Offset(1, 4)]);
        writes.ForgetPartitions([new TopicPartition("samples", new Partition(1))]);
        io.Call(0).SetResult();
        Assert.True(writes.WaitForOldest(Wait, CancellationToken.None));
        Assert.Equal("0@10", Describe(writes.TakeStoredOffsets()));
    }

    [Fact]
    public void Waiting_for_all_gives_up_when_cancelled_and_cancelled_writes_are_never_acknowledged()
    {
        var io = new ControlledWrites();
        using var writes = new OrderedWrites(io.Write, 2, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1));
        writes.Submit(PooledUtf8.Encode("a"), 1, [Offset(0, 10)]);
        writes.Submit(PooledUtf8.Encode("b"), 1, [Offset(0, 20)]);
        io.Call(1).SetResult();
        using (var grace = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
        {
            Assert.ThrowsAny<OperationCanceledException>(() => writes.WaitForAll(grace.Token));
        }

        writes.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => writes.WaitForOldest(Wait, CancellationToken.None));
        Assert.Empty(writes.TakeStoredOffsets());
        Assert.Equal(2, writes.PointsHeld);
    }

    [Fact]
    public void A_batch_gives_its_buffer_back_once_stored_or_cancelled_and_not_before()
    {
        var io = new ControlledWrites();
        using var writes = new OrderedWrites(io.Write, 3, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1));
        var stored = PooledUtf8.Encode("stored");
        var failedOnce = PooledUtf8.Encode("failed once");
        var cancelled = PooledUtf8.Encode("cancelled");
        var deadLetters = PooledUtf8.Encode("never written");
        writes.Submit(stored, 1, [Offset(0, 10)]);
        writes.Submit(failedOnce, 1, [Offset(0, 20)]);
        writes.Submit(deadLetters, 0, [Offset(0, 21)]);
        Assert.Throws<ObjectDisposedException>(() => deadLetters.Memory);

        // A failed attempt keeps the bytes for the retry; only the stored write returns them.
        io.CallWith("failed once").SetException(new IOException("connection reset"));
        var retry = io.CallWith("failed once", 1);
        Assert.Equal(11, failedOnce.Memory.Length);
        io.CallWith("stored").SetResult();
        WaitUntil(() => Throws(() => stored.Memory));
        Assert.Equal(11, failedOnce.Memory.Length);
        retry.SetResult();
        WaitUntil(() => Throws(() => failedOnce.Memory));

        var taken = new List<TopicPartitionOffset>();
        WaitUntil(() =>
        {
            taken.AddRange(writes.TakeStoredOffsets());
            return writes.Count == 0;
        });
        Assert.Equal("0@21", Describe(taken.GroupBy(o => o.Partition.Value).Select(g => g.MaxBy(o => o.Offset.Value)!)));
        writes.Submit(cancelled, 1, [Offset(0, 30)]);
        _ = io.CallWith("cancelled");
        writes.Cancel();
        WaitUntil(() => Throws(() => cancelled.Memory));
    }

    private static bool Throws(Func<ReadOnlyMemory<byte>> read)
    {
        try
        {
            _ = read();
            return false;
        }
        catch (ObjectDisposedException)
        {
            return true;
        }
    }

    [Fact]
    public void Submitting_past_the_window_is_refused()
    {
        var io = new ControlledWrites();
        using var writes = new OrderedWrites(io.Write, 1, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1));
        writes.Submit(PooledUtf8.Encode("a"), 1, [Offset(0, 10)]);
        Assert.Throws<InvalidOperationException>(() => writes.Submit(PooledUtf8.Encode("b"), 1, [Offset(0, 11)]));
    }
}
