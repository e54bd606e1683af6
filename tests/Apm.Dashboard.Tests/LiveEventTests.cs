using Apm.Dashboard.Live;

namespace Apm.Dashboard.Tests;

/// <summary>The shared, pooled event buffers of the live stream: held once per listener, returned by the last.</summary>
public sealed class LiveEventTests
{
    [Fact]
    public void An_event_stays_readable_until_every_listener_released_it_and_a_release_too_many_throws()
    {
        var e = LiveEvent.Copy("fleet", """{"rows":[]}"""u8, references: 3);
        Assert.Equal("""{"rows":[]}"""u8.ToArray(), e.Data.ToArray());
        e.Release();
        e.Release();
        Assert.Equal("fleet", e.Name);
        Assert.Equal(11, e.Data.Length);
        e.Release();
        Assert.Throws<ObjectDisposedException>(() => e.Data);
        Assert.Throws<InvalidOperationException>(e.Release);
    }

    [Fact]
    public void A_slow_listener_drops_its_oldest_events_counted_and_releases_them_and_a_gone_one_releases_the_rest()
    {
        using var hub = new LiveHub(null!, null!, Microsoft.Extensions.Options.Options.Create(new DashboardOptions()), Microsoft.Extensions.Logging.Abstractions.NullLogger<LiveHub>.Instance);
        var slow = hub.Subscribe(null);
        var events = Enumerable.Range(0, 12).Select(i => LiveEvent.Copy("fleet", [(byte)('0' + (i % 10))], references: 1)).ToList();
        foreach (var e in events) slow.Post(e);

        // The queue holds eight: the four oldest were dropped, released (their buffers gone) and counted.
        Assert.Equal(4, Counter(hub, "dashboard.events_dropped"));
        foreach (var e in events.Take(4)) Assert.Throws<ObjectDisposedException>(() => e.Data);
        Assert.True(slow.Events.TryRead(out var first));
        Assert.Same(events[4], first);
        first.Release();

        // The browser leaves with seven unsent: each is released, and a post after that is released at once.
        slow.Dispose();
        foreach (var e in events.Skip(5)) Assert.Throws<ObjectDisposedException>(() => e.Data);
        var late = LiveEvent.Copy("fleet", "{}"u8, references: 1);
        slow.Post(late);
        Assert.Throws<ObjectDisposedException>(() => late.Data);
        Assert.Equal(0, hub.Subscribers);
    }

    private static long Counter(LiveHub hub, string name) => hub.ReadCounters().Single(c => c.Key == name).Value;
}
