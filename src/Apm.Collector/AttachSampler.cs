using System.Collections.Concurrent;
using Apm.Jvm.Attach;
using Apm.Protocol.V1;
using Microsoft.Extensions.Logging;

namespace Apm.Collector;

/// <summary>
/// Reads what the hsperfdata counters do not show, through the HotSpot attach mechanism: the finalization
/// queue (GC.finalizer_info) and the class histogram (GC.class_histogram, which forces a full GC). Runs
/// beside the counter sampling and never blocks it. Each JVM has at most one request sequence in flight,
/// at most <see cref="CollectorOptions.AttachConcurrency"/> run at once, and each request has
/// <see cref="CollectorOptions.AttachTimeout"/>, so a stuck JVM delays only itself (and holds one slot for at
/// most the timeout). A JVM whose request fails is reported once per change of failure (an
/// <see cref="AttachStatus"/>), counted, and retried only after <see cref="BackoffFactor"/> intervals.
/// </summary>
public sealed partial class AttachSampler : IDisposable
{
    /// <summary>Attach failures push the JVM's next attempt this many intervals away.</summary>
    public const int BackoffFactor = 5;

    /// <summary>Finalization-queue classes sent per sample (largest first); the rest are counted as omitted.</summary>
    public const int MaxFinalizerClasses = 50;

    /// <summary>Finalizable class names remembered per JVM for the histogram selection (bounds memory).</summary>
    public const int MaxRememberedFinalizableClasses = 1_000;

    private const string FinalizerCommand = "GC.finalizer_info";
    private const string HistogramCommand = "GC.class_histogram";

    private readonly CollectorOptions _options;
    private readonly CollectorMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Action<CollectorMessage> _publish;
    private readonly JcmdRunner _jcmd;
    private readonly TimeProvider _time;
    private readonly HistogramSelection _selection;
    private readonly SemaphoreSlim _gate;
    private readonly TimeSpan? _finalizerInterval;
    private readonly TimeSpan? _histogramInterval;
    private readonly Dictionary<string, JvmState> _jvms = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Task, byte> _inFlight = new();

    /// <summary>Creates the sampler; throws <see cref="ArgumentException"/> for an invalid watch pattern.</summary>
    /// <param name="publish">Called from worker threads with each message to send; must be thread-safe.</param>
    /// <param name="jcmd">Runs one diagnostic command; defaults to <see cref="HotSpotAttachClient.JcmdAsync"/>.</param>
    public AttachSampler(CollectorOptions options, CollectorMetrics metrics, ILogger logger, Action<CollectorMessage> publish, JcmdRunner? jcmd = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _metrics = metrics;
        _logger = logger;
        _publish = publish;
        if (jcmd is null)
        {
            var client = new HotSpotAttachClient();
            jcmd = client.JcmdAsync;
        }

        _jcmd = jcmd;
        _time = time ?? TimeProvider.System;
        _selection = new HistogramSelection(options.HistogramWatchPatterns, Math.Max(0, options.HistogramTopN));
        _gate = new SemaphoreSlim(Math.Max(1, options.AttachConcurrency));
        _finalizerInterval = options.EffectiveFinalizerInterval;
        _histogramInterval = options.EffectiveHistogramInterval;
    }

    /// <summary>Runs one diagnostic command against a host pid and returns its text output.</summary>
    public delegate Task<string> JcmdRunner(int pid, string commandLine, TimeSpan timeout, CancellationToken ct);

    /// <summary>False when both intervals are 00:00:00: then nothing ever attaches.</summary>
    public bool Enabled => _finalizerInterval is not null || _histogramInterval is not null;

    /// <summary>How often <see cref="Tick"/> should run: often enough for the shortest interval, at most 1 s.</summary>
    public TimeSpan TickInterval
    {
        get
        {
            var shortest = new[] { _finalizerInterval, _histogramInterval }.Where(x => x is not null).Select(x => x!.Value).DefaultIfEmpty(TimeSpan.FromSeconds(1)).Min();
            return TimeSpan.FromMilliseconds(Math.Clamp(shortest.TotalMilliseconds / 4, 100, 1000));
        }
    }

    /// <summary>
    /// Starts the requests that are due for <paramref name="jvms"/> (the sampler's current JVMs) and forgets
    /// JVMs no longer listed. Returns at once; results are published as they arrive. One caller at a time.
    /// </summary>
    public void Tick(IReadOnlyList<JvmIdentity> jvms, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(jvms);
        var now = _time.GetUtcNow();
        var listed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var jvm in jvms)
        {
            if (jvm.Pid <= 0 || string.IsNullOrEmpty(jvm.JvmId)) continue;
            listed.Add(jvm.JvmId);
            if (!_jvms.TryGetValue(jvm.JvmId, out var st))
            {
                // The first histogram waits one interval: starting a collector must not force a full GC everywhere.
                st = new JvmState { NextFinalizer = now, NextHistogram = now + (_histogramInterval ?? TimeSpan.Zero) };
                _jvms[jvm.JvmId] = st;
            }

            if (Volatile.Read(ref st.InFlight) != 0) continue;
            var doFinalizer = _finalizerInterval is { } fi && now >= st.NextFinalizer;
            var doHistogram = _histogramInterval is { } hi && now >= st.NextHistogram;
            if (!doFinalizer && !doHistogram) continue;
            if (doFinalizer) st.NextFinalizer = now + _finalizerInterval!.Value;
            if (doHistogram) st.NextHistogram = now + _histogramInterval!.Value;
            Volatile.Write(ref st.InFlight, 1);
            var task = RunAsync(st, jvm, doFinalizer, doHistogram, ct);
            _inFlight[task] = 0;
            _ = task.ContinueWith(t => _inFlight.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        foreach (var id in _jvms.Keys.Where(k => !listed.Contains(k)).ToList()) _jvms.Remove(id);
    }

    /// <summary>Waits for the requests in flight (call after cancelling their token, before disposing the publisher).</summary>
    public Task DrainAsync() => Task.WhenAll(_inFlight.Keys.ToArray());

    public void Dispose() => _gate.Dispose();

    private async Task RunAsync(JvmState st, JvmIdentity jvm, bool doFinalizer, bool doHistogram, CancellationToken ct)
    {
        // Off the caller's thread at once: the tick loop never waits for a JVM.
        await Task.Yield();
        var command = doFinalizer ? FinalizerCommand : HistogramCommand;
        try
        {
            await _gate.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                if (doFinalizer)
                {
                    var info = FinalizerInfoParser.Parse(await _jcmd(jvm.Pid, FinalizerCommand, _options.AttachTimeout, ct).ConfigureAwait(false));
                    foreach (var (name, _) in info.Classes)
                    {
                        if (st.Finalizable.Count >= MaxRememberedFinalizableClasses) break;
                        st.Finalizable.Add(name);
                    }

                    _metrics.FinalizerSampled();
                    _publish(new CollectorMessage { Finalizer = ToFinalizerSample(jvm, info, NowNanos()) });
                }

                if (doHistogram)
                {
                    command = HistogramCommand;
                    var histogram = ClassHistogramParser.Parse(await _jcmd(jvm.Pid, HistogramCommand, _options.AttachTimeout, ct).ConfigureAwait(false));
                    _metrics.HistogramSampled();
                    _publish(new CollectorMessage { Histogram = ToHistogramSample(jvm, histogram, _selection.Select(histogram, st.Finalizable), NowNanos()) });
                }
            }
            finally
            {
                _gate.Release();
            }

            if (st.FailureKey is not null)
            {
                st.FailureKey = null;
                LogAttachRecovered(_logger, jvm.JvmId);
                _publish(new CollectorMessage { AttachStatus = new AttachStatus { Jvm = jvm, TimeUnixNanos = NowNanos(), Ok = true } });
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Shutting down.
        }
        catch (AttachException ex)
        {
            Fail(st, jvm, ex.Reason.ToString(), ex.Message, command);
        }
        catch (FormatException ex)
        {
            Fail(st, jvm, "ParseError", $"{command} answered text that is not its output: {ex.Message}", command);
        }
#pragma warning disable CA1031 // One JVM's unexpected failure must not end the loop for the others; it is reported like any failure.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fail(st, jvm, "Unexpected", ex.GetType().Name + ": " + ex.Message, command);
        }
        finally
        {
            Volatile.Write(ref st.InFlight, 0);
        }
    }

    private void Fail(JvmState st, JvmIdentity jvm, string kind, string reason, string command)
    {
        _metrics.AttachFailed(kind);
        var now = _time.GetUtcNow();
        var retry = now + BackoffFactor * (_finalizerInterval ?? _histogramInterval ?? TimeSpan.FromSeconds(1));
        st.NextFinalizer = retry;
        if (st.NextHistogram < retry) st.NextHistogram = retry;

        // Once per change: the same failure of the same command every retry is counted, not re-sent.
        var key = kind + "|" + command;
        if (st.FailureKey == key) return;
        st.FailureKey = key;
        LogAttachFailed(_logger, jvm.JvmId, command, kind, reason);
        _publish(new CollectorMessage
        {
            AttachStatus = new AttachStatus
            {
                Jvm = jvm,
                TimeUnixNanos = Nanos(now),
                Ok = false,
                Failure = kind,
                Reason = reason,
                Command = command,
                RetryUnixNanos = Nanos(retry),
            },
        });
    }

    /// <summary>Builds the protocol message of one finalizer reading (largest classes first, capped).</summary>
    public static FinalizerSample ToFinalizerSample(JvmIdentity jvm, FinalizerInfo info, long timeUnixNanos)
    {
        ArgumentNullException.ThrowIfNull(info);
        var sample = new FinalizerSample { Jvm = jvm, TimeUnixNanos = timeUnixNanos, PendingTotal = info.PendingTotal };
        foreach (var (name, count) in info.Classes.OrderByDescending(c => c.Count).Take(MaxFinalizerClasses))
        {
            sample.Classes.Add(new FinalizerClassCount { ClassName = name, Count = count });
        }

        sample.ClassesOmitted = Math.Max(0, info.Classes.Count - MaxFinalizerClasses);
        return sample;
    }

    /// <summary>Builds the protocol message of one histogram from its kept rows.</summary>
    public static ClassHistogramSample ToHistogramSample(JvmIdentity jvm, ClassHistogram histogram, IReadOnlyList<(ClassHistogramRow Row, string Reasons)> kept, long timeUnixNanos)
    {
        ArgumentNullException.ThrowIfNull(histogram);
        ArgumentNullException.ThrowIfNull(kept);
        var sample = new ClassHistogramSample
        {
            Jvm = jvm,
            TimeUnixNanos = timeUnixNanos,
            TotalInstances = histogram.TotalInstances,
            TotalBytes = histogram.TotalBytes,
            FinalizerRegistered = histogram.Rows.Where(r => r.ClassName == HistogramSelection.FinalizerClass).Sum(r => r.Instances),
            RowsOmitted = histogram.Rows.Count - kept.Count,
        };
        foreach (var (row, reasons) in kept)
        {
            sample.Rows.Add(new HistogramRow { ClassName = row.ClassName, Instances = row.Instances, Bytes = row.Bytes, Module = row.Module ?? string.Empty, KeptBecause = reasons });
        }

        return sample;
    }

    private long NowNanos() => Nanos(_time.GetUtcNow());

    private static long Nanos(DateTimeOffset t) => (t - DateTimeOffset.UnixEpoch).Ticks * 100;

    [LoggerMessage(Level = LogLevel.Warning, Message = "Attach to JVM {JvmId} failed ({Command}, {Kind}): {Reason}; retrying later")]
    private static partial void LogAttachFailed(ILogger logger, string jvmId, string command, string kind, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Attach to JVM {JvmId} works again")]
    private static partial void LogAttachRecovered(ILogger logger, string jvmId);

    /// <summary>
    /// One JVM's schedule. The tick loop owns it while <see cref="InFlight"/> is 0 and the JVM's request task
    /// owns it while 1 (the flag's volatile write hands it over).
    /// </summary>
    private sealed class JvmState
    {
        public int InFlight;

        public DateTimeOffset NextFinalizer { get; set; }

        public DateTimeOffset NextHistogram { get; set; }

        public string? FailureKey { get; set; }

        public HashSet<string> Finalizable { get; } = new(StringComparer.Ordinal);
    }
}
