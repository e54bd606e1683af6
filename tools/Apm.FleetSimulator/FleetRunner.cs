using System.Diagnostics;
using Apm.Collector;
using Apm.Protocol.V1;

namespace Apm.FleetSimulator;

/// <summary>What one paced run published.</summary>
/// <param name="Samples">JVM samples handed to the publisher.</param>
/// <param name="Messages">All messages handed to the publisher (samples, finalizer readings, histograms, statuses).</param>
/// <param name="BufferFullWaits">Times the producer's buffer was full and the runner waited (the simulator slows down instead of dropping).</param>
/// <param name="Elapsed">Wall time of the run.</param>
public sealed record FleetRunResult(long Samples, long Messages, long BufferFullWaits, TimeSpan Elapsed)
{
    /// <summary>Samples per second actually offered.</summary>
    public double SamplesPerSecond => Elapsed > TimeSpan.Zero ? Samples / Elapsed.TotalSeconds : 0;
}

/// <summary>
/// Publishes a <see cref="Fleet"/>'s messages through the collector's <see cref="CollectorPublisher"/> at a target
/// rate of samples per second, paced in 10 ms slices. Each sample carries the wall-clock time it was made.
/// </summary>
public static class FleetRunner
{
    /// <summary>
    /// Publishes at <paramref name="samplesPerSecond"/> until <paramref name="duration"/> passes or the token fires.
    /// When the producer's buffer is full it waits and retries instead of dropping, so what it reports was published.
    /// </summary>
    /// <param name="observe">Called with every message before it is published (for latency probes); may be null.</param>
    public static FleetRunResult Run(Fleet fleet, CollectorPublisher publisher, double samplesPerSecond, TimeSpan duration,
        CancellationToken cancellationToken, Action<CollectorMessage>? observe = null)
    {
        ArgumentNullException.ThrowIfNull(fleet);
        ArgumentNullException.ThrowIfNull(publisher);
        if (!(samplesPerSecond > 0) || double.IsInfinity(samplesPerSecond)) throw new ArgumentOutOfRangeException(nameof(samplesPerSecond), samplesPerSecond, "the rate must be a positive number");
        var buffer = new List<CollectorMessage>(8);
        long samples = 0, messages = 0, waits = 0;
        var clock = Stopwatch.StartNew();
        while (!cancellationToken.IsCancellationRequested)
        {
            var elapsed = clock.Elapsed;
            if (duration > TimeSpan.Zero && elapsed >= duration) break;
            var due = (long)(samplesPerSecond * elapsed.TotalSeconds);
            if (samples >= due)
            {
                Thread.Sleep(10);
                continue;
            }

            // Catch up in one go, but never more than a second's worth, so a stall does not become a burst.
            var now = DateTimeOffset.UtcNow;
            var limit = Math.Min(due, samples + (long)Math.Max(1, samplesPerSecond));
            while (samples < limit && !cancellationToken.IsCancellationRequested)
            {
                buffer.Clear();
                fleet.StepNext(now, buffer);
                foreach (var m in buffer)
                {
                    observe?.Invoke(m);
                    while (!publisher.Publish(m))
                    {
                        waits++;
                        if (cancellationToken.IsCancellationRequested) break;
                        Thread.Sleep(1);
                    }

                    messages++;
                    if (m.BodyCase == CollectorMessage.BodyOneofCase.Sample) samples++;
                }
            }
        }

        return new FleetRunResult(samples, messages, waits, clock.Elapsed);
    }
}
