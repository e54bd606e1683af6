using System.Diagnostics;
using Apm.Influx;
using Confluent.Kafka;

namespace Apm.Aggregator;

/// <summary>
/// Batch writes that run in the background, at most <see cref="MaxInFlight"/> at a time, and are acknowledged in the
/// order they were submitted: <see cref="TakeStoredOffsets"/> hands out the offsets of the longest prefix of batches
/// that are all stored, so an offset is never committed while an earlier batch (of any partition) could still be lost.
/// Each write is retried with exponential backoff until it is stored or the writes are cancelled (shutdown); a batch
/// that never stores blocks every later one from being acknowledged. The consumer thread submits and takes; the writes
/// run on the thread pool. Not thread-safe apart from that split.
/// </summary>
internal sealed class OrderedWrites : IDisposable
{
    private readonly Func<ReadOnlyMemory<byte>, CancellationToken, Task> _write;
    private readonly TimeSpan _retryInitialDelay;
    private readonly TimeSpan _retryMaxDelay;
    private readonly Action<int, TimeSpan, Exception>? _onFailure;
    private readonly Action<int, long>? _onStored;
    private readonly Queue<Entry> _queue = new();
    private readonly CancellationTokenSource _cancel = new();

    /// <param name="write">Stores one batch of line protocol; throws when it could not.</param>
    /// <param name="onFailure">Called (on a pool thread) after each failed attempt: points, next delay, error.</param>
    /// <param name="onStored">Called (on a pool thread) once a batch is stored: points, milliseconds from submit (with retries).</param>
    public OrderedWrites(Func<ReadOnlyMemory<byte>, CancellationToken, Task> write, int maxInFlight, TimeSpan retryInitialDelay, TimeSpan retryMaxDelay,
        Action<int, TimeSpan, Exception>? onFailure = null, Action<int, long>? onStored = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxInFlight, 1);
        _write = write;
        MaxInFlight = maxInFlight;
        _retryInitialDelay = retryInitialDelay;
        _retryMaxDelay = retryMaxDelay;
        _onFailure = onFailure;
        _onStored = onStored;
    }

    public int MaxInFlight { get; }

    /// <summary>Batches submitted and not yet taken (stored or not).</summary>
    public int Count => _queue.Count;

    /// <summary>True when no batch may be submitted before the oldest one is taken: stop consuming (backpressure).</summary>
    public bool IsFull => _queue.Count >= MaxInFlight;

    /// <summary>Points of the batches submitted and not yet taken.</summary>
    public int PointsHeld => _queue.Sum(e => e.Points);

    /// <summary>
    /// Starts writing <paramref name="lines"/> (none when <paramref name="points"/> is 0: a batch of dead letters only)
    /// and queues its offsets behind every earlier batch. The caller checks <see cref="IsFull"/> first. The lines are
    /// disposed (their buffer goes back to its pool) once the write is stored or cancelled.
    /// </summary>
    public void Submit(PooledUtf8? lines, int points, IReadOnlyCollection<TopicPartitionOffset> offsets)
    {
        if (IsFull)
        {
            lines?.Dispose();
            throw new InvalidOperationException($"{MaxInFlight} batches are in flight already.");
        }

        Task write;
        if (points == 0 || lines is null)
        {
            lines?.Dispose();
            write = Task.CompletedTask;
        }
        else
        {
            write = Task.Run(() => WriteUntilStoredAsync(lines, points, _cancel.Token));
        }

        _queue.Enqueue(new Entry(write, points, [.. offsets]));
    }

    /// <summary>
    /// Removes the batches at the head whose writes are stored and returns their offsets merged (the highest per
    /// partition), or an empty list. Stops at the first batch not stored yet, even if later ones are.
    /// </summary>
    public List<TopicPartitionOffset> TakeStoredOffsets()
    {
        var merged = new Dictionary<TopicPartition, TopicPartitionOffset>();
        while (_queue.TryPeek(out var head) && head.Write.IsCompletedSuccessfully)
        {
            _queue.Dequeue();
            foreach (var o in head.Offsets)
            {
                if (!merged.TryGetValue(o.TopicPartition, out var had) || had.Offset.Value < o.Offset.Value) merged[o.TopicPartition] = o;
            }
        }

        return [.. merged.Values];
    }

    /// <summary>Waits until the oldest batch is stored (or <paramref name="timeout"/>); true when it is or none is queued.</summary>
    public bool WaitForOldest(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!_queue.TryPeek(out var head)) return true;
        try
        {
            return head.Write.Wait(timeout, cancellationToken);
        }
        catch (AggregateException)
        {
            // Only Cancel() ends a write unstored: nothing queued can be acknowledged any more.
            throw new OperationCanceledException("A batch write was cancelled before it was stored.");
        }
    }

    /// <summary>Waits until every queued write is stored; throws <see cref="OperationCanceledException"/> when cancelled first.</summary>
    public void WaitForAll(CancellationToken cancellationToken)
    {
        foreach (var e in _queue.ToArray())
        {
            try
            {
                e.Write.Wait(cancellationToken);
            }
            catch (AggregateException)
            {
                throw new OperationCanceledException("A batch write was cancelled before it was stored.");
            }
        }
    }

    /// <summary>
    /// The partitions were lost (taken by another member without a revocation): their offsets must not be committed.
    /// The writes go on (a point stored twice overwrites itself); the other partitions' offsets stay queued.
    /// </summary>
    public void ForgetPartitions(IReadOnlyCollection<TopicPartition> partitions)
    {
        foreach (var e in _queue) e.Offsets.RemoveAll(o => partitions.Contains(o.TopicPartition));
    }

    /// <summary>Stops retrying: writes still running end unstored and are never acknowledged.</summary>
    public void Cancel() => _cancel.Cancel();

    public void Dispose()
    {
        _cancel.Cancel();
        _cancel.Dispose();
    }

    private async Task WriteUntilStoredAsync(PooledUtf8 lines, int points, CancellationToken cancellationToken)
    {
        using var owned = lines;
        var started = Stopwatch.GetTimestamp();
        var delay = _retryInitialDelay;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                await _write(lines.Memory, cancellationToken).ConfigureAwait(false);
                break;
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                // Anything but our own cancellation (a timeout's TaskCanceledException too) is a failed attempt.
                _onFailure?.Invoke(points, delay, ex);
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _retryMaxDelay.Ticks));
            }
        }

        _onStored?.Invoke(points, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    private sealed record Entry(Task Write, int Points, List<TopicPartitionOffset> Offsets);
}
