using Apm.Influx;
using Apm.Testing;

namespace Apm.Influx.Tests;

/// <summary>One real influxd shared by the tests of a class; each test uses its own database.</summary>
public sealed class InfluxFixture : IAsyncLifetime
{
    private InfluxServer? _server;

    public InfluxServer Server => _server ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() => _server = await InfluxServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (_server != null) await _server.DisposeAsync();
    }

    /// <summary>Options for a new database (created) with a name unique to the test.</summary>
    public async Task<InfluxOptions> NewDatabaseAsync(string prefix)
    {
        var options = Server.Options(prefix + "_" + Guid.NewGuid().ToString("N")[..8]);
        using var writer = new InfluxWriter(options);
        await writer.EnsureDatabaseAsync();
        return options;
    }

    /// <summary>count(field) over a measurement, 0 when nothing matched.</summary>
    public static async Task<long> CountAsync(InfluxOptions options, string measurement, string field, string where = "")
    {
        using var q = new InfluxQueryClient(options);
        var r = await q.QueryAsync($"SELECT count({InfluxQl.QuoteIdentifier(field)}) FROM {InfluxQl.QuoteIdentifier(measurement)} {where}");
        var s = r.Series.SingleOrDefault();
        return s is null ? 0 : s.GetInt64(0, "count") ?? 0;
    }
}
