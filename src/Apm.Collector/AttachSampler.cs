using System.Collections.Concurrent;
using Apm.Jvm.Attach;
using Apm.Protocol.V1;
using Microsoft.Extensions.Logging;

namespace Apm.Collector;

/// <summary>
/// Reads what the hsperfdata counters do not show, through the HotSpot attach mechanism: the finalization
/// queue (GC.finalizer_info) and the class histogram (GC.class_histogram, which forces a full GC, preceded by
/// VM.class_hierarchy to learn the JVM's TimerTask subclasses). Runs beside the counter sampling and never
/// blocks it. Each JVM has at most one request sequence in flight (its attach listener serves one request at
/// a time anyway), at most <see cref="CollectorOptions.AttachConcurrency"/> run at once, and each request has a
/// timeout (<see cref="CollectorOptions.AttachTimeout"/>; <see cref="CollectorOptions.HistogramTimeout"/> for the
/// histogram, whose full GC can take long on a big heap), so a stuck JVM delays only itself. A failure is
/// reported once per change (an <see cref="AttachStatus"/>), counted, and backs off only its own kind of
/// request: a failing histogram never delays the finalizer readings.
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
    private const string HierarchyCommand = "VM.class_hierarchy";
    private const string TimerTaskClass = "java.util.TimerTask";

    /// <summary>TimerTask subclass names remembered per JVM for the histogram selection (bounds memory).</summary>
    public const int MaxRememberedTimerTaskClasses = 10_000;

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
        try
        {
            await _gate.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                var finalizerFailure = doFinalizer ? await RunStepAsync(st, jvm, histogram: false, () => SampleFinalizerAsync(st, jvm, ct), ct).ConfigureAwait(false) : null;
                if (doHistogram)
                {
                    if (finalizerFailure is { } f && !CommandLevel(f))
                    {
                        // The JVM cannot be reached at all: a histogram would fail the same way, after its longer timeout.
                        // It is tried with the finalizer's retry, without a failure of its own.
                        st.NextHistogram = st.NextFinalizer;
                    }
                    else
                    {
                        await RunStepAsync(st, jvm, histogram: true, () => SampleHistogramAsync(st, jvm, ct), ct).ConfigureAwait(false);
                    }
                }
            }
            finally
            {
                _gate.Release();
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Shutting down.
        }
        finally
        {
            Volatile.Write(ref st.InFlight, 0);
        }
    }

    /// <summary>Failures of the command itself, not of reaching the JVM: the JVM's other requests may still work.</summary>
    private static bool CommandLevel(string kind) => kind is nameof(AttachFailure.CommandFailed) or "ParseError" or "Unexpected";

    private async Task SampleFinalizerAsync(JvmState st, JvmIdentity jvm, CancellationToken ct)
    {
        st.Command = FinalizerCommand;
        var info = FinalizerInfoParser.Parse(await _jcmd(jvm.Pid, FinalizerCommand, _options.AttachTimeout, ct).ConfigureAwait(false));
        foreach (var (name, _) in info.Classes)
        {
            if (st.Finalizable.Count >= MaxRememberedFinalizableClasses) break;
            st.Finalizable.Add(name);
        }

        _metrics.FinalizerSampled();
        _publish(new CollectorMessage { Finalizer = ToFinalizerSample(jvm, info, NowNanos()) });
    }

    private async Task SampleHistogramAsync(JvmState st, JvmIdentity jvm, CancellationToken ct)
    {
        // The JVM's TimerTask subclasses, learned again before each histogram (so at most once per histogram
        // interval): a histogram shows no superclasses. A JVM without the command (JDK 8) keeps selection by name.
        st.Command = HierarchyCommand;
        try
        {
            var subclasses = ClassHierarchyParser.ParseSubclasses(
                await _jcmd(jvm.Pid, ClassHierarchyParser.SubclassesCommand(TimerTaskClass), _options.AttachTimeout, ct).ConfigureAwait(false), TimerTaskClass);
            st.TimerTasks = subclasses.Take(MaxRememberedTimerTaskClasses).ToHashSet(StringComparer.Ordinal);
        }
        catch (Exception ex) when (ex is FormatException || (ex is AttachException a && a.Reason == AttachFailure.CommandFailed))
        {
            LogHierarchyUnavailable(_logger, jvm.JvmId, ex.Message);
        }

        st.Command = HistogramCommand;
        var histogram = ClassHistogramParser.Parse(await _jcmd(jvm.Pid, HistogramCommand, _options.EffectiveHistogramTimeout, ct).ConfigureAwait(false));
        var hints = new HistogramHints(st.Finalizable, st.TimerTasks, st.History.Observe(histogram));
        _metrics.HistogramSampled();
        _publish(new CollectorMessage { Histogram = ToHistogramSample(jvm, histogram, _selection.Select(histogram, hints), NowNanos()) });
    }

    /// <summary>Runs one kind of request and reports its failure or recovery; returns the failure kind, or null on success.</summary>
    private async Task<string?> RunStepAsync(JvmState st, JvmIdentity jvm, bool histogram, Func<Task> step, CancellationToken ct)
    {
        try
        {
            await step().ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            throw;
        }
        catch (AttachException ex)
        {
            return Fail(st, jvm, histogram, ex.Reason.ToString(), ex.Message);
        }
        catch (FormatException ex)
        {
            return Fail(st, jvm, histogram, "ParseError", $"{st.Command} answered text that is not its output: {ex.Message}");
        }
#pragma warning disable CA1031 // One JVM's unexpected failure must not end the loop for the others; it is reported like any failure.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            return Fail(st, jvm, histogram, "Unexpected", ex.GetType().Name + ": " + ex.Message);
        }

        if (histogram) st.HistogramFailures = 0;
        ref var key = ref histogram ? ref st.HistogramFailureKey : ref st.FinalizerFailureKey;
        if (key is null) return null;
        key = null;
        if (st.FinalizerFailureKey is null && st.HistogramFailureKey is null)
        {
            LogAttachRecovered(_logger, jvm.JvmId);
            _publish(new CollectorMessage { AttachStatus = new AttachStatus { Jvm = jvm, TimeUnixNanos = NowNanos(), Ok = true } });
        }

        return null;
    }

    /// <summary>
    /// Counts a failure and backs off that kind of request only: finalizer readings retry after
    /// <see cref="BackoffFactor"/> finalizer intervals; histograms after 1, 2, 4, then at most
    /// <see cref="BackoffFactor"/> histogram intervals as failures repeat.
    /// </summary>
    private string Fail(JvmState st, JvmIdentity jvm, bool histogram, string kind, string reason)
    {
        _metrics.AttachFailed(kind);
        var now = _time.GetUtcNow();
        DateTimeOffset retry;
        if (histogram)
        {
            st.HistogramFailures++;
            var intervals = Math.Min(BackoffFactor, 1 << Math.Min(st.HistogramFailures - 1, 16));
            retry = st.NextHistogram = now + (intervals * _histogramInterval!.Value);
        }
        else
        {
            retry = st.NextFinalizer = now + (BackoffFactor * _finalizerInterval!.Value);
        }

        // Once per change: the same failure of the same command every retry is counted, not re-sent.
        var command = st.Command;
        var key = kind + "|" + command;
        ref var current = ref histogram ? ref st.HistogramFailureKey : ref st.FinalizerFailureKey;
        if (current == key) return kind;
        current = key;
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
        return kind;
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

    [LoggerMessage(Level = LogLevel.Debug, Message = "JVM {JvmId} did not list its TimerTask subclasses (histogram rows are chosen by name): {Reason}")]
    private static partial void LogHierarchyUnavailable(ILogger logger, string jvmId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Attach to JVM {JvmId} works again")]
    private static partial void LogAttachRecovered(ILogger logger, string jvmId);

    /// <summary>
    /// One JVM's schedule. The tick loop owns it while <see cref="InFlight"/> is 0 and the JVM's request task
    /// owns it while 1 (the flag's volatile write hands it over).
    /// </summary>
    private sealed class JvmState
    {
        public int InFlight;

        // Fields, not properties: the failure bookkeeping takes them by reference.
        public string? FinalizerFailureKey;

        public string? HistogramFailureKey;

        public DateTimeOffset NextFinalizer { get; set; }

        public DateTimeOffset NextHistogram { get; set; }

        /// <summary>The command being run, for failure reports.</summary>
        public string Command { get; set; } = FinalizerCommand;

        /// <summary>Histogram failures in a row (drives the histogram backoff).</summary>
        public int HistogramFailures { get; set; }

        public HashSet<string> Finalizable { get; } = new(StringComparer.Ordinal);

        /// <summary>The JVM's TimerTask subclasses as last listed, or null before it ever answered.</summary>
        public HashSet<string>? TimerTasks { get; set; }

        public HistogramHistory History { get; } = new();
    }
}
