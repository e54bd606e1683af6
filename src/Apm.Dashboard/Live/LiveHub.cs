using System.Buffers;
using System.Collections.Concurrent;
using System.Text.Json;
using System.Threading.Channels;
using Apm.Dashboard.Panels;
using Apm.Server;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Apm.Dashboard.Live;

/// <summary>
/// The one poller of the process: while browsers listen, it reads InfluxDB every <see cref="DashboardOptions.PollInterval"/>
/// (the fleet once, each watched JVM once, however many browsers watch it) and fans the results out to every SSE
/// subscriber. A slow browser loses its oldest events (counted), never blocks the others.
/// </summary>
public sealed partial class LiveHub(
    FleetQueries fleet,
    ChartQueries charts,
    IOptions<DashboardOptions> options,
    ILogger<LiveHub> logger) : BackgroundService, ICounterSource
{
    private readonly ConcurrentDictionary<long, Subscriber> _subscribers = new();
    private const int ScratchKeepBytes = 32 * 1024 * 1024;
    private readonly SemaphoreSlim _fleetLock = new(1, 1);
    private readonly Lock _scratchLock = new();
    private ArrayBufferWriter<byte> _scratch = new(64 * 1024);
    private long _nextId;
    private long _polls;
    private long _pollFailures;
    private long _eventsDropped;
    private FleetSnapshot? _fleet;

    /// <summary>Browsers listening now.</summary>
    public int Subscribers => _subscribers.Count;

    /// <summary>
    /// The fleet, read at most once per poll interval however many pages render it (the page and the poller share it).
    /// </summary>
    public async Task<FleetSnapshot> GetFleetAsync(CancellationToken ct)
    {
        if (_fleet is { } f && DateTimeOffset.UtcNow - f.TakenAt < options.Value.PollInterval) return f;
        await _fleetLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_fleet is { } again && DateTimeOffset.UtcNow - again.TakenAt < options.Value.PollInterval) return again;
            var fresh = await fleet.ReadAsync(ct).ConfigureAwait(false);
            _fleet = fresh;
            return fresh;
        }
        finally
        {
            _fleetLock.Release();
        }
    }

    /// <summary>Registers a browser; dispose the result when it leaves. <paramref name="jvmId"/> null = fleet events.</summary>
    public Subscriber Subscribe(string? jvmId)
    {
        var id = Interlocked.Increment(ref _nextId);
        var s = new Subscriber(this, id, jvmId);
        _subscribers[id] = s;
        return s;
    }

    /// <inheritdoc/>
    public IEnumerable<KeyValuePair<string, long>> ReadCounters()
    {
        yield return new("dashboard.sse_clients", _subscribers.Count);
        yield return new("dashboard.polls", Interlocked.Read(ref _polls));
        yield return new("dashboard.poll_failures", Interlocked.Read(ref _pollFailures));
        yield return new("dashboard.events_dropped", Interlocked.Read(ref _eventsDropped));
    }

    /// <summary>The fleet event the browser applies (shared by the SSE stream and the first event a subscriber gets).</summary>
    public static FleetEvent ToEvent(FleetSnapshot snapshot, FleetDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentNullException.ThrowIfNull(definition);
        var rows = snapshot.Rows.Select(r => new FleetRowEvent(
            r.Jvm.Id,
            r.Jvm.Status,
            definition.Columns.Select((c, i) => FleetCell.Text(r, c, i)).ToList(),
            definition.Columns.Select((c, i) => FleetCell.Ratio(r, i)).ToList(),
            FleetCell.AlertsText(r),
            Sparkline.Points(r.Sparkline))).ToList();
        return new FleetEvent(
            snapshot.TakenAt.ToUnixTimeMilliseconds(),
            snapshot.NewestSample?.ToUnixTimeMilliseconds(),
            (long)snapshot.StaleAfter.TotalMilliseconds,
            snapshot.IsStale,
            rows);
    }

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.PollInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            if (_subscribers.IsEmpty) continue;
            try
            {
                await PollAsync(stoppingToken).ConfigureAwait(false);
                Interlocked.Increment(ref _polls);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                // Whatever went wrong (InfluxDB away, a timeout, an answer we could not read), the poller must live on:
                // a dead BackgroundService would stop the whole host. Browsers are told and show the stale banner.
                Interlocked.Increment(ref _pollFailures);
                LogPollFailed(logger, ex.Message);
                var error = new ErrorEvent(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), "InfluxDB could not be read: " + ex.Message);
                Broadcast([.. _subscribers.Values], "error", w => JsonSerializer.Serialize(w, error, DashboardJsonContext.Default.ErrorEvent));
            }
        }
    }

    private async Task PollAsync(CancellationToken ct)
    {
        var subscribers = _subscribers.Values.ToList();
        if (subscribers.Any(s => s.JvmId is null))
        {
            var snapshot = await GetFleetAsync(ct).ConfigureAwait(false);
            // UTF-8 once for every listener, into a buffer of the hub's own pool that the last listener returns: the
            // fleet event of 2,500 JVMs is about 0.6 MB, and a fresh array of it per poll was a large object every poll.
            Broadcast([.. subscribers.Where(s => s.JvmId is null)], "fleet", w => JsonSerializer.Serialize(w, ToEvent(snapshot, fleet.Definition), DashboardJsonContext.Default.FleetEvent));
        }

        var o = options.Value;
        foreach (var group in subscribers.Where(s => s.JvmId is not null).GroupBy(s => s.JvmId!, StringComparer.Ordinal))
        {
            var now = DateTimeOffset.UtcNow;
            var data = await charts.ReadAsync(group.Key, now - o.LiveWindow, now, null, ct).ConfigureAwait(false);
            var staleAfter = fleet.StaleAfter;
            var jvmEvent = new JvmEvent(group.Key, now.ToUnixTimeMilliseconds(), data.LastSampleMs, (long)staleAfter.TotalMilliseconds, data.Panels);
            Broadcast([.. group], "jvm", w => JsonSerializer.Serialize(w, jvmEvent, DashboardJsonContext.Default.JvmEvent));
        }
    }

    /// <summary>Serializes one event once and posts it to <paramref name="to"/>, each holding a reference to the buffer.</summary>
    private void Broadcast(IReadOnlyList<Subscriber> to, string name, Action<Utf8JsonWriter> serialize)
    {
        if (to.Count == 0) return;
        LiveEvent e;
        lock (_scratchLock)
        {
            _scratch.ResetWrittenCount();
            using (var writer = new Utf8JsonWriter(_scratch)) serialize(writer);
            e = LiveEvent.Copy(name, _scratch.WrittenSpan, to.Count);
            // A buffer grown by one huge event is not kept for the process's life.
            if (_scratch.Capacity > ScratchKeepBytes) _scratch = new ArrayBufferWriter<byte>(64 * 1024);
        }

        foreach (var s in to) s.Post(e);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dashboard poll failed: {Reason}")]
    private static partial void LogPollFailed(ILogger logger, string reason);

    /// <inheritdoc/>
    public override void Dispose()
    {
        _fleetLock.Dispose();
        base.Dispose();
    }

    /// <summary>
    /// One listening browser: a small queue of serialized events that drops the oldest when the browser is slow. Each
    /// event read from <see cref="Events"/> must be released once sent (dropped and unread ones are released here).
    /// </summary>
    public sealed class Subscriber : IDisposable
    {
        private readonly LiveHub _hub;
        private readonly long _id;
        private readonly Channel<LiveEvent> _events;

        internal Subscriber(LiveHub hub, long id, string? jvmId)
        {
            _hub = hub;
            _id = id;
            JvmId = jvmId;
            _events = Channel.CreateBounded<LiveEvent>(
                new BoundedChannelOptions(8) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true },
                dropped =>
                {
                    Interlocked.Increment(ref _hub._eventsDropped);
                    dropped.Release();
                });
        }

        /// <summary>The watched JVM, or null for the fleet.</summary>
        public string? JvmId { get; }

        /// <summary>The events to send, in order; release each once written.</summary>
        public ChannelReader<LiveEvent> Events => _events.Reader;

        internal void Post(LiveEvent e)
        {
            if (!_events.Writer.TryWrite(e)) e.Release(); // the subscription has ended
        }

        /// <summary>Stops the subscription and releases the events it did not send.</summary>
        public void Dispose()
        {
            _hub._subscribers.TryRemove(_id, out _);
            _events.Writer.TryComplete();
            while (_events.Reader.TryRead(out var e)) e.Release();
        }
    }
}
