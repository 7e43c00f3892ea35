"""zhengyun's OpenStack test bed: a minimal real OpenStack control plane on loopback.

Run by `cargo xtask openstack up|down|status|env` with the interpreter of the cached
virtual environment (so openstack's packages and `requests` are importable). Layout of the
state directory (default `target/openstack-bed/`):

    pg/          private PostgreSQL cluster (owned by user postgres), port 15432
    rabbit/      RabbitMQ's mnesia, logs and config; node port 5673, epmd 4370, dist 25673
    etc/<svc>/   generated configuration of each service
    log/<svc>.log
    pids/<svc>   one PID per service; `down` stops every descendant too
    state/       nova's state_path (compute node identity), glance's image store, locks
    env          the variables the tests read (ZY_OPENSTACK_*)

Everything listens on 127.0.0.1 only. See docs/OPENSTACK_TESTBED.md.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import concurrent.futures as cf

VENV = sys.prefix
BIN = os.path.join(VENV, "bin")
PG_PORT = 15432
RABBIT_PORT = 5673
EPMD_PORT = 4370
PASSWORD = "zy-bed-secret"
REGION = "RegionOne"
PORTS = {
    "keystone": 5000,
    "placement": 8778,
    "nova-api": 8774,
    "glance": 9292,
    "neutron": 9696,
    "cinder-api": 8776,
}
DATABASES = ["keystone", "placement", "nova_api", "nova", "nova_cell0", "glance", "neutron", "cinder"]
SERVICE_USERS = ["nova", "placement", "glance", "neutron", "cinder"]


def log(msg):
    print(f"[openstack-bed {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Bed:
    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.etc = os.path.join(self.root, "etc")
        self.logs = os.path.join(self.root, "log")
        self.pids = os.path.join(self.root, "pids")
        self.state = os.path.join(self.root, "state")

    def p(self, *parts):
        return os.path.join(self.root, *parts)

    # ---- processes -------------------------------------------------------------------

    def spawn(self, name, argv, env=None, user=None):
        os.makedirs(self.logs, exist_ok=True)
        os.makedirs(self.pids, exist_ok=True)
        full_env = dict(os.environ)
        full_env["PYTHONWARNINGS"] = "ignore"
        full_env["PATH"] = BIN + ":" + full_env.get("PATH", "/usr/bin:/bin")
        full_env.update(env or {})
        if user:
            argv = ["runuser", "-u", user, "--"] + argv
        out = open(os.path.join(self.logs, name + ".log"), "ab")
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=self.root,
            start_new_session=True,
        )
        with open(os.path.join(self.pids, name), "w") as f:
            f.write(str(proc.pid))
        return proc

    def run(self, argv, env=None, user=None, check=True, quiet=False):
        full_env = dict(os.environ)
        full_env["PYTHONWARNINGS"] = "ignore"
        full_env["PATH"] = BIN + ":" + full_env.get("PATH", "/usr/bin:/bin")
        full_env.update(env or {})
        if user:
            argv = ["runuser", "-u", user, "--"] + argv
        r = subprocess.run(argv, env=full_env, cwd=self.root, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r

    def recorded(self):
        out = {}
        if not os.path.isdir(self.pids):
            return out
        for name in sorted(os.listdir(self.pids)):
            try:
                out[name] = int(open(os.path.join(self.pids, name)).read().strip())
            except (OSError, ValueError):
                pass
        return out

    # ---- infrastructure --------------------------------------------------------------

    def pg_bindir(self):
        base = "/usr/lib/postgresql"
        versions = sorted(
            (d for d in os.listdir(base) if os.path.exists(os.path.join(base, d, "bin", "initdb"))),
            key=lambda v: int(v) if v.isdigit() else 0,
        )
        if not versions:
            raise RuntimeError("PostgreSQL binaries not found under /usr/lib/postgresql")
        return os.path.join(base, versions[-1], "bin")

    def start_postgres(self):
        data = self.p("pg", "data")
        sock = self.p("pg", "sock")
        os.makedirs(sock, exist_ok=True)
        shutil.chown(self.p("pg"), "postgres")
        shutil.chown(sock, "postgres")
        bindir = self.pg_bindir()
        fresh = not os.path.exists(os.path.join(data, "PG_VERSION"))
        if fresh:
            self.run([os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                     user="postgres")
        self.spawn("postgres", [
            os.path.join(bindir, "postgres"), "-D", data, "-p", str(PG_PORT), "-k", sock,
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=300",
        ], user="postgres")
        psql = os.path.join(bindir, "psql")
        for _ in range(100):
            r = self.run([psql, "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "-tAc", "SELECT 1"],
                         check=False)
            if r.returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("PostgreSQL did not start (see log/postgres.log)")
        if fresh:
            for db in DATABASES:
                # A run killed half-way through may have made some of them already.
                r = self.run([psql, "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "-tAc",
                              f"SELECT 1 FROM pg_database WHERE datname = '{db}'"], check=False)
                if r.returncode == 0 and r.stdout.strip() == "1":
                    continue
                self.run([psql, "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "-c",
                          f"CREATE DATABASE {db}"])
        return fresh

    def start_rabbit(self):
        base = self.p("rabbit")
        os.makedirs(os.path.join(base, "mnesia"), exist_ok=True)
        os.makedirs(os.path.join(base, "log"), exist_ok=True)
        with open(os.path.join(base, "rabbitmq.conf"), "w") as f:
            f.write(
                f"listeners.tcp.1 = 127.0.0.1:{RABBIT_PORT}\n"
                "default_user = zy\n"
                f"default_pass = {PASSWORD}\n"
                "loopback_users = none\n"
                "management.tcp.port = 0\n"
            )
        env = {
            "HOME": base,
            "RABBITMQ_MNESIA_BASE": os.path.join(base, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(base, "log"),
            "RABBITMQ_CONFIG_FILE": os.path.join(base, "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(base, "enabled_plugins"),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(RABBIT_PORT),
            "RABBITMQ_DIST_PORT": str(RABBIT_PORT + 20000),
            "RABBITMQ_NODENAME": "zybed@localhost",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(EPMD_PORT),
            "RABBITMQ_SERVER_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        with open(os.path.join(base, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        self.spawn("epmd", ["epmd", "-address", "127.0.0.1", "-port", str(EPMD_PORT)])
        self.spawn("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env=env)

    def check_alive(self):
        for name, pid in self.recorded().items():
            if not os.path.exists(f"/proc/{pid}") or zombie(pid):
                raise RuntimeError(f"{name} exited during start-up (see log/{name}.log)")

    def wait_port(self, port, what, timeout=120):
        import socket
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.check_alive()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{what} did not open 127.0.0.1:{port} in {timeout} s (see {self.logs})")

    # ---- configuration ---------------------------------------------------------------

    def db(self, name):
        return f"postgresql+psycopg2://postgres@127.0.0.1:{PG_PORT}/{name}"

    def auth_section(self, user, section="keystone_authtoken", extra=""):
        return (
            f"[{section}]\n"
            "www_authenticate_uri = http://127.0.0.1:5000\n"
            "auth_url = http://127.0.0.1:5000\n"
            "auth_type = password\n"
            f"username = {user}\n"
            f"password = {PASSWORD}\n"
            "project_name = service\n"
            "user_domain_name = Default\n"
            "project_domain_name = Default\n"
            f"region_name = {REGION}\n"
            + extra + "\n"
        )

    def write(self, service, name, text):
        d = os.path.join(self.etc, service)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
        return os.path.join(d, name)

    def copy_from_venv(self, service, name, dest=None):
        src = os.path.join(VENV, "etc", service, name)
        d = os.path.join(self.etc, service)
        os.makedirs(d, exist_ok=True)
        shutil.copy(src, os.path.join(d, dest or name))

    def configure(self):
        transport = f"rabbit://zy:{PASSWORD}@127.0.0.1:{RABBIT_PORT}/"
        locks = self.p("state", "locks")
        for d in ("state", "state/locks", "state/nova", "state/images", "state/cinder", "keys/fernet", "keys/credential"):
            os.makedirs(self.p(d), exist_ok=True)
        common = f"[oslo_concurrency]\nlock_path = {locks}\n\n"
        self.write("keystone", "keystone.conf",
                   "[DEFAULT]\nuse_stderr = true\n\n"
                   f"[database]\nconnection = {self.db('keystone')}\n\n"
                   "[token]\nprovider = fernet\n\n"
                   f"[fernet_tokens]\nkey_repository = {self.p('keys', 'fernet')}\n\n"
                   f"[credential]\nkey_repository = {self.p('keys', 'credential')}\n\n")
        self.write("placement", "placement.conf",
                   "[DEFAULT]\nuse_stderr = true\n\n"
                   f"[placement_database]\nconnection = {self.db('placement')}\n\n"
                   "[api]\nauth_strategy = keystone\n\n"
                   + self.auth_section("placement"))
        self.write("nova", "nova.conf",
                   "[DEFAULT]\n"
                   "use_stderr = true\n"
                   f"transport_url = {transport}\n"
                   "compute_driver = fake.FakeDriverWithoutFakeNodes\n"
                   f"state_path = {self.p('state', 'nova')}\n"
                   "host = zybed\n"
                   "my_ip = 127.0.0.1\n"
                   "allow_resize_to_same_host = true\n"
                   "vif_plugging_is_fatal = false\n"
                   "vif_plugging_timeout = 0\n"
                   "instance_usage_audit = false\n"
                   "heal_instance_info_cache_interval = -1\n\n"
                   f"[api_database]\nconnection = {self.db('nova_api')}\n\n"
                   f"[database]\nconnection = {self.db('nova')}\n\n"
                   "[api]\nauth_strategy = keystone\n\n"
                   "[conductor]\nworkers = 1\n\n"
                   "[scheduler]\nworkers = 1\ndiscover_hosts_in_cells_interval = 2\n\n"
                   "[filter_scheduler]\nenabled_filters = ComputeFilter\n\n"
                   "[wsgi]\napi_paste_config = api-paste.ini\n\n"
                   "[glance]\nregion_name = " + REGION + "\n\n"
                   "[cinder]\nos_region_name = " + REGION + "\n\n"
                   "[oslo_messaging_notifications]\ndriver = noop\n\n"
                   "[vnc]\nenabled = false\n\n"
                   + common
                   + self.auth_section("nova")
                   # Nova's own token goes with the user's to Cinder: Cinder refuses to let
                   # anyone but Nova delete an attachment Nova made (ConflictNovaUsingAttachment),
                   # so without it no volume could be detached.
                   + self.auth_section("nova", "service_user", "send_service_user_token = true\n")
                   + self.auth_section("placement", "placement")
                   + self.auth_section("neutron", "neutron"))
        self.copy_from_venv("nova", "api-paste.ini")
        self.write("glance", "glance-api.conf",
                   "[DEFAULT]\nuse_stderr = true\nenabled_backends = fs:file\n\n"
                   f"[database]\nconnection = {self.db('glance')}\n\n"
                   "[glance_store]\ndefault_backend = fs\n\n"
                   f"[fs]\nfilesystem_store_datadir = {self.p('state', 'images')}\n\n"
                   "[os_glance_staging_store]\nfilesystem_store_datadir = " + self.p('state', 'staging') + "\n\n"
                   "[os_glance_tasks_store]\nfilesystem_store_datadir = " + self.p('state', 'tasks') + "\n\n"
                   "[paste_deploy]\nflavor = keystone\n\n"
                   + common
                   + self.auth_section("glance"))
        self.copy_from_venv("glance", "glance-api-paste.ini")
        self.write("neutron", "neutron.conf",
                   "[DEFAULT]\nuse_stderr = true\n"
                   "core_plugin = ml2\nservice_plugins = router\n"
                   "auth_strategy = keystone\n"
                   f"transport_url = {transport}\n"
                   "dhcp_agent_notification = false\n"
                   "notify_nova_on_port_status_changes = false\n"
                   "notify_nova_on_port_data_changes = false\n"
                   f"state_path = {self.p('state')}\n"
                   "api_paste_config = " + os.path.join(self.etc, "neutron", "api-paste.ini") + "\n\n"
                   f"[database]\nconnection = {self.db('neutron')}\n\n"
                   + common
                   + self.auth_section("neutron")
                   + self.auth_section("nova", "nova"))
        self.write("neutron", "ml2_conf.ini",
                   "[ml2]\ntype_drivers = flat,vlan,vxlan\ntenant_network_types = vxlan\n"
                   "mechanism_drivers = zybind\nextension_drivers = port_security\n\n"
                   "[ml2_type_flat]\nflat_networks = *\n\n"
                   "[ml2_type_vxlan]\nvni_ranges = 1:10000\n\n")
        self.copy_from_venv("neutron", "api-paste.ini")
        self.write("cinder", "cinder.conf",
                   "[DEFAULT]\nuse_stderr = true\n"
                   f"transport_url = {transport}\n"
                   "auth_strategy = keystone\n"
                   "enabled_backends = fake\n"
                   "default_volume_type = __DEFAULT__\n"
                   "osapi_volume_listen = 127.0.0.1\n"
                   "osapi_volume_listen_port = 8776\n"
                   "osapi_volume_workers = 1\n"
                   f"state_path = {self.p('state', 'cinder')}\n"
                   "host = zybed\n"
                   "api_paste_config = " + os.path.join(self.etc, "cinder", "api-paste.ini") + "\n\n"
                   f"[database]\nconnection = {self.db('cinder')}\n\n"
                   "[fake]\nvolume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver\n"
                   "volume_backend_name = fake\n\n"
                   "[oslo_messaging_notifications]\ndriver = noop\n\n"
                   + common
                   + self.auth_section("cinder")
                   + self.auth_section("nova", "nova"))
        self.copy_from_venv("cinder", "api-paste.ini")

    def patch_neutron_migration(self):
        """Neutron 29.0.0's migration d553edeb540f converts a table's character set with
        MySQL-only SQL and no dialect check; on PostgreSQL it is a syntax error. The guard
        makes it a no-op on any other dialect (documented in docs/OPENSTACK_TESTBED.md)."""
        import glob
        hits = glob.glob(os.path.join(VENV, "lib", "python3*", "site-packages", "neutron", "db", "migration",
                                      "alembic_migrations", "versions", "*", "expand", "d553edeb540f_*.py"))
        for path in hits:
            src = open(path).read()
            if "zhengyun test bed guard" in src:
                continue
            marker = "def upgrade():\n"
            if marker not in src:
                raise RuntimeError(f"unexpected shape of {path}")
            src = src.replace(marker, marker
                              + "    # zhengyun test bed guard: MySQL-only statement below\n"
                              + "    if op.get_bind().dialect.name != 'mysql':\n"
                              + "        return\n", 1)
            with open(path, "w") as f:
                f.write(src)

    def db_sync(self):
        e = {"OS_NOVA_CONFIG_DIR": os.path.join(self.etc, "nova")}
        kconf = ["--config-file", os.path.join(self.etc, "keystone", "keystone.conf")]
        nconf = ["--config-file", os.path.join(self.etc, "nova", "nova.conf")]

        def keystone():
            self.run([os.path.join(BIN, "keystone-manage")] + kconf + ["db_sync"])
            self.run([os.path.join(BIN, "keystone-manage")] + kconf + ["fernet_setup", "--keystone-user", "root", "--keystone-group", "root"])
            self.run([os.path.join(BIN, "keystone-manage")] + kconf + ["credential_setup", "--keystone-user", "root", "--keystone-group", "root"])

        def nova():
            nm = [os.path.join(BIN, "nova-manage")] + nconf
            self.run(nm + ["api_db", "sync"], env=e)
            self.run(nm + ["cell_v2", "map_cell0", "--database_connection", self.db("nova_cell0")], env=e)
            self.run(nm + ["db", "sync"], env=e)
            self.run(nm + ["cell_v2", "create_cell", "--name", "cell1"], env=e)

        jobs = [
            keystone,
            lambda: self.run([os.path.join(BIN, "placement-manage"), "--config-file",
                              os.path.join(self.etc, "placement", "placement.conf"), "db", "sync"]),
            nova,
            lambda: self.run([os.path.join(BIN, "glance-manage"), "--config-file",
                              os.path.join(self.etc, "glance", "glance-api.conf"), "db_sync"]),
            lambda: self.run([os.path.join(BIN, "neutron-db-manage"),
                              "--config-file", os.path.join(self.etc, "neutron", "neutron.conf"),
                              "--config-file", os.path.join(self.etc, "neutron", "ml2_conf.ini"),
                              "upgrade", "heads"]),
            lambda: self.run([os.path.join(BIN, "cinder-manage"), "--config-file",
                              os.path.join(self.etc, "cinder", "cinder.conf"), "db", "sync"]),
        ]
        with cf.ThreadPoolExecutor(len(jobs)) as ex:
            for f in [ex.submit(j) for j in jobs]:
                f.result()

    def uwsgi(self, name, module, port, env):
        return self.spawn(name, [
            os.path.join(BIN, "uwsgi"), "--http-socket", f"127.0.0.1:{port}", "--module", module,
            "--home", VENV, "--master", "--processes", "1", "--threads", "4", "--enable-threads",
            "--lazy-apps", "--die-on-term", "--buffer-size", "65535", "--hook-master-start",
            "unix_signal:15 gracefully_kill_them_all", "--add-header", "Connection: close",
            "--disable-logging",
        ], env=env)

    # ---- keystone: users, roles, catalogue -------------------------------------------

    def keystone_bootstrap(self):
        self.run([os.path.join(BIN, "keystone-manage"), "--config-file",
                  os.path.join(self.etc, "keystone", "keystone.conf"), "bootstrap",
                  "--bootstrap-password", PASSWORD, "--bootstrap-username", "admin",
                  "--bootstrap-project-name", "admin", "--bootstrap-role-name", "admin",
                  "--bootstrap-service-name", "keystone", "--bootstrap-region-id", REGION,
                  "--bootstrap-admin-url", "http://127.0.0.1:5000/v3",
                  "--bootstrap-public-url", "http://127.0.0.1:5000/v3",
                  "--bootstrap-internal-url", "http://127.0.0.1:5000/v3"])

    def api(self):
        return Api()

    def keystone_catalogue(self, api):
        project = api.ensure("identity", "/v3/projects", "project", "service",
                             {"name": "service", "domain_id": "default"})
        admin_role = api.find("identity", "/v3/roles", "roles", "admin")
        # Services pass their own token along with the user's (X-Service-Token); the
        # receiving service accepts it only from a user with the `service` role.
        service_role = api.ensure("identity", "/v3/roles", "role", "service", {"name": "service"})
        for name in SERVICE_USERS:
            user = api.ensure("identity", "/v3/users", "user", name,
                              {"name": name, "domain_id": "default", "password": PASSWORD})
            for role in (admin_role, service_role):
                api.call("identity", "PUT", f"/v3/projects/{project['id']}/users/{user['id']}/roles/{role['id']}")
        for stype, name, url in [
            ("placement", "placement", "http://127.0.0.1:8778"),
            ("compute", "nova", "http://127.0.0.1:8774/v2.1"),
            ("image", "glance", "http://127.0.0.1:9292"),
            ("network", "neutron", "http://127.0.0.1:9696"),
            ("block-storage", "cinderv3", "http://127.0.0.1:8776/v3"),
        ]:
            svc = api.ensure("identity", "/v3/services", "service", name, {"name": name, "type": stype})
            existing = api.call("identity", "GET", f"/v3/endpoints?service_id={svc['id']}")["endpoints"]
            for iface in ("public", "internal", "admin"):
                if not any(e["interface"] == iface for e in existing):
                    api.call("identity", "POST", "/v3/endpoints", {"endpoint": {
                        "service_id": svc["id"], "interface": iface, "url": url, "region_id": REGION}})
        # The project zhengyun's tests map a department to, with the member role for a
        # user of its own (the driver's credentials in the tests are admin's).
        zy = api.ensure("identity", "/v3/projects", "project", "zhengyun",
                        {"name": "zhengyun", "domain_id": "default"})
        api.call("identity", "PUT", f"/v3/projects/{zy['id']}/users/{api.admin_user_id()}/roles/{admin_role['id']}")
        return zy

    # ---- fixtures --------------------------------------------------------------------

    def fixtures(self, api, project_id):
        # Tests and benchmarks create many servers; Nova's default quota (10) would refuse.
        api.call("compute", "PUT", f"/os-quota-sets/{project_id}", {"quota_set": {
            "instances": -1, "cores": -1, "ram": -1}})
        api.call("network", "PUT", f"/v2.0/quotas/{project_id}", {"quota": {"port": -1}})
        for name, vcpus, ram, disk in [("m1.tiny", 1, 512, 1), ("m1.small", 1, 2048, 20),
                                       ("m1.medium", 2, 4096, 40), ("m1.large", 4, 8192, 80)]:
            flavors = api.call("compute", "GET", "/flavors")["flavors"]
            if not any(f["name"] == name for f in flavors):
                api.call("compute", "POST", "/flavors", {"flavor": {
                    "name": name, "vcpus": vcpus, "ram": ram, "disk": disk}})
        images = api.call("image", "GET", "/v2/images?name=cirros")["images"]
        if not images:
            img = api.call("image", "POST", "/v2/images", {
                "name": "cirros", "disk_format": "raw", "container_format": "bare", "visibility": "public"})
            api.call("image", "PUT", f"/v2/images/{img['id']}/file", raw=b"\0" * 4096)
        nets = api.call("network", "GET", "/v2.0/networks?name=private")["networks"]
        if not nets:
            net = api.call("network", "POST", "/v2.0/networks", {"network": {
                "name": "private", "shared": True}})["network"]
            api.call("network", "POST", "/v2.0/subnets", {"subnet": {
                "name": "private-v4", "network_id": net["id"], "ip_version": 4,
                "cidr": "10.20.0.0/16", "gateway_ip": "10.20.0.1"}})

    # ---- the whole bed ---------------------------------------------------------------

    def up(self):
        t0 = time.time()
        if self.alive():
            log("already running")
            return
        os.makedirs(self.root, exist_ok=True)
        self.patch_neutron_migration()
        self.configure()
        # One-time set-up (databases, schemas, Keystone's bootstrap) is marked done at its
        # end; a start killed half-way through it leaves no marker, and the next start
        # begins again from nothing rather than failing on what exists half-made.
        marker = os.path.join(self.root, "initialised")
        if os.path.exists(self.p("pg", "data")) and not os.path.exists(marker):
            log("a previous start stopped during set-up: starting from nothing")
            shutil.rmtree(self.p("pg"), ignore_errors=True)
        fresh = self.start_postgres()
        self.start_rabbit()
        if fresh:
            log("databases created; syncing schemas")
            self.db_sync()
        log(f"infrastructure and schemas ready after {time.time() - t0:.0f} s")
        self.start_service("keystone")
        if fresh:
            self.wait_port(5000, "keystone")
            self.keystone_bootstrap()
            with open(marker, "w") as f:
                f.write("set-up complete\n")
        self.wait_port(5000, "keystone")
        api = Api()
        api.wait_ready()
        zy = self.keystone_catalogue(api)
        self.wait_port(RABBIT_PORT, "rabbitmq")
        for name in ["placement", "nova-api", "glance", "neutron", "nova-conductor", "nova-scheduler",
                     "nova-compute", "cinder-api", "cinder-scheduler", "cinder-volume"]:
            self.start_service(name)
        for svc, port in PORTS.items():
            self.wait_port(port, svc)
        for svc, path in [("compute", "/flavors"), ("network", "/v2.0/networks"), ("image", "/v2/images"),
                          ("placement", "/resource_providers")]:
            api.wait_service(svc, path, bed=self)
        self.fixtures(api, zy["id"])
        # The compute node appears in placement once nova-compute has reported and the
        # scheduler's periodic discover_hosts has mapped it.
        deadline = time.time() + 120
        while time.time() < deadline:
            self.check_alive()
            rps = api.call("placement", "GET", "/resource_providers")["resource_providers"]
            if rps:
                self.run([os.path.join(BIN, "nova-manage"), "--config-file",
                          os.path.join(self.etc, "nova", "nova.conf"), "cell_v2", "discover_hosts"],
                         env=self.nova_env(), check=False)
                hv = api.call("compute", "GET", "/os-hypervisors")["hypervisors"]
                if hv:
                    break
            time.sleep(1)
        else:
            raise RuntimeError("the fake compute node never appeared in placement (see log/nova-compute.log)")
        api.wait_service("block-storage", "/volumes")
        deadline = time.time() + 60
        while time.time() < deadline:
            pools = api.call("block-storage", "GET", "/scheduler-stats/get_pools", ok=(200, 404))
            if pools and pools.get("pools"):
                break
            time.sleep(1)
        net = api.call("network", "GET", "/v2.0/networks?name=private")["networks"][0]
        self.write_env(zy, net["id"])
        log(f"ready after {time.time() - t0:.0f} s; variables in {self.p('env')}")

    def nova_env(self):
        return {"OS_NOVA_CONFIG_DIR": os.path.join(self.etc, "nova"),
                "OS_NOVA_CONFIG_FILES": "api-paste.ini;nova.conf"}

    def start_service(self, name):
        """Starts one OpenStack service (also used by tests that kill and restart one)."""
        cfg = lambda s: {f"OS_{s.upper()}_CONFIG_DIR": os.path.join(self.etc, s)}
        nconf = ["--config-file", os.path.join(self.etc, "nova", "nova.conf")]
        cconf = ["--config-file", os.path.join(self.etc, "cinder", "cinder.conf")]
        if name == "keystone":
            self.uwsgi("keystone", "keystone.wsgi.api:application", 5000, cfg("keystone"))
        elif name == "placement":
            self.uwsgi("placement", "placement.wsgi.api:application", 8778, cfg("placement"))
        elif name == "nova-api":
            self.uwsgi("nova-api", "nova.wsgi.osapi_compute:application", 8774, self.nova_env())
        elif name == "glance":
            self.uwsgi("glance", "glance.wsgi.api:application", 9292, cfg("glance"))
        elif name == "neutron":
            self.uwsgi("neutron", "neutron.wsgi.api:application", 9696,
                       {"OS_NEUTRON_CONFIG_DIR": os.path.join(self.etc, "neutron"),
                        "OS_NEUTRON_CONFIG_FILES": "neutron.conf;ml2_conf.ini"})
        elif name.startswith("nova-"):
            self.spawn(name, [os.path.join(BIN, name)] + nconf, env=self.nova_env())
        elif name.startswith("cinder-"):
            self.spawn(name, [os.path.join(BIN, name)] + cconf)
        else:
            raise RuntimeError(f"unknown service {name}")

    def add_computes(self, n):
        """Starts `n` more nova-compute services (fake hypervisors zybed-1 … zybed-n) beside
        the bed's one, for the adoption benchmark: Nova's resource tracker reads every
        allocation on its node from Placement at each claim, so one fake node building its
        k-th server costs k requests and a thousand servers on one node take most of an
        hour; spread over eleven nodes they take minutes. The tests keep the single node."""
        api = Api()
        tries = {}

        def ensure(k):
            name = f"nova-compute-{k}"
            pid = self.recorded().get(name)
            if pid is not None and os.path.exists(f"/proc/{pid}") and not zombie(pid):
                return
            tries[k] = tries.get(k, 0) + 1
            if tries[k] > 3:
                raise RuntimeError(f"{name} keeps exiting (see log/{name}.log)")
            # Its own state directory: Nova keeps the node's identity there and refuses to
            # start a node whose name differs from the one it recorded.
            state = self.p("state", f"nova-{k}")
            os.makedirs(state, exist_ok=True)
            conf = self.write("nova", f"compute-{k}.conf",
                              f"[DEFAULT]\nhost = zybed-{k}\nstate_path = {state}\n")
            self.spawn(name, [os.path.join(BIN, "nova-compute"), "--config-file",
                              os.path.join(self.etc, "nova", "nova.conf"), "--config-file", conf],
                       env=self.nova_env())

        deadline = time.time() + 180
        while time.time() < deadline:
            # Nova's compute sometimes dies of a start-up race ("dictionary changed size
            # during iteration"); it is started again, at most three times.
            for k in range(1, n + 1):
                ensure(k)
            self.run([os.path.join(BIN, "nova-manage"), "--config-file",
                      os.path.join(self.etc, "nova", "nova.conf"), "cell_v2", "discover_hosts"],
                     env=self.nova_env(), check=False, quiet=True)
            hv = api.call("compute", "GET", "/os-hypervisors")["hypervisors"]
            if len(hv) >= 1 + n:
                log(f"{len(hv)} hypervisors")
                return
            time.sleep(3)
        raise RuntimeError("the extra compute nodes never appeared (see log/nova-compute-*.log)")

    def stop_service(self, name):
        pid = self.recorded().get(name)
        if pid is None:
            return
        stop_trees([pid])
        try:
            os.remove(os.path.join(self.pids, name))
        except OSError:
            pass

    def write_env(self, zy, network_id):
        env = {
            "ZY_OPENSTACK_AUTH_URL": "http://127.0.0.1:5000/v3",
            "ZY_OPENSTACK_USERNAME": "admin",
            "ZY_OPENSTACK_PASSWORD": PASSWORD,
            "ZY_OPENSTACK_PROJECT": "admin",
            "ZY_OPENSTACK_DOMAIN": "Default",
            "ZY_OPENSTACK_REGION": REGION,
            "ZY_OPENSTACK_TEST_PROJECT": "zhengyun",
            "ZY_OPENSTACK_TEST_PROJECT_ID": zy["id"],
            "ZY_OPENSTACK_BED": self.root,
            "ZY_OPENSTACK_NETWORK_ID": network_id,
            "ZY_OPENSTACK_PYTHON": sys.executable,
            "ZY_OPENSTACK_BED_SCRIPT": os.path.abspath(__file__),
            "OS_AUTH_URL": "http://127.0.0.1:5000/v3",
            "OS_USERNAME": "admin",
            "OS_PASSWORD": PASSWORD,
            "OS_PROJECT_NAME": "admin",
            "OS_USER_DOMAIN_NAME": "Default",
            "OS_PROJECT_DOMAIN_NAME": "Default",
            "OS_REGION_NAME": REGION,
            "OS_IDENTITY_API_VERSION": "3",
        }
        with open(self.p("env"), "w") as f:
            for k, v in env.items():
                f.write(f"{k}={v}\n")

    def alive(self):
        pids = self.recorded()
        return bool(pids) and all(os.path.exists(f"/proc/{pid}") for pid in pids.values())

    def status(self):
        pids = self.recorded()
        if not pids:
            print("not running")
            return False
        ok = True
        for name, pid in pids.items():
            up = os.path.exists(f"/proc/{pid}")
            ok &= up
            print(f"{name:18} {pid:>8}  {'running' if up else 'STOPPED'}")
        return ok

    def down(self):
        pids = self.recorded()
        if not pids:
            log("not running")
            return
        n = stop_trees(list(pids.values()))
        shutil.rmtree(self.pids, ignore_errors=True)
        log(f"stopped {n} processes")


def stop_trees(roots):
    """SIGTERM every process in the trees under `roots`, wait up to 10 s, SIGKILL the rest
    (the services fork workers; killing only the recorded PID leaves orphans behind)."""
    tree = set()
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
                ppid = int(stat[stat.rfind(")") + 2:].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in tree:
            continue
        tree.add(pid)
        todo.extend(children.get(pid, []))
    for pid in tree:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.time() + 10
    while time.time() < deadline and any(os.path.exists(f"/proc/{p}") and not zombie(p) for p in tree):
        time.sleep(0.2)
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return len(tree)


def zombie(pid):
    try:
        stat = open(f"/proc/{pid}/stat").read()
        return stat[stat.rfind(")") + 2] == "Z"
    except OSError:
        return True


class Api:
    """A tiny Keystone-authenticated HTTP client for the bed's own setup."""

    def __init__(self):
        import requests
        self.http = requests.Session()
        self.token = None
        self.catalog = {}
        self.user_id = None

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while True:
            try:
                self.login()
                return
            except Exception as e:  # keystone still starting
                if time.time() > deadline:
                    raise RuntimeError(f"keystone does not answer: {e}")
                time.sleep(0.5)

    def login(self):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": PASSWORD}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
        r = self.http.post("http://127.0.0.1:5000/v3/auth/tokens", json=body, timeout=30)
        r.raise_for_status()
        self.token = r.headers["X-Subject-Token"]
        tok = r.json()["token"]
        self.user_id = tok["user"]["id"]
        self.catalog = {"identity": "http://127.0.0.1:5000"}
        for svc in tok.get("catalog", []):
            for ep in svc["endpoints"]:
                if ep["interface"] == "public":
                    base = ep["url"].rstrip("/")
                    if svc["type"] == "identity":
                        base = base[: -len("/v3")] if base.endswith("/v3") else base
                    self.catalog[svc["type"]] = base

    def admin_user_id(self):
        return self.user_id

    def call(self, service, method, path, body=None, raw=None, ok=None, retries=30):
        if service not in self.catalog:
            self.login()
        url = self.catalog[service] + path
        headers = {"X-Auth-Token": self.token}
        if service == "compute":
            headers["OpenStack-API-Version"] = "compute 2.90"
        for attempt in range(retries):
            try:
                if raw is not None:
                    headers["Content-Type"] = "application/octet-stream"
                    r = self.http.request(method, url, data=raw, headers=headers, timeout=60)
                else:
                    r = self.http.request(method, url, json=body, headers=headers, timeout=60)
            except Exception:
                if attempt == retries - 1:
                    raise
                time.sleep(1)
                continue
            if r.status_code >= 500 or r.status_code == 503:
                if attempt == retries - 1:
                    raise RuntimeError(f"{method} {url}: {r.status_code} {r.text[:500]}")
                time.sleep(1)
                continue
            break
        if ok and r.status_code in ok and r.status_code >= 400:
            return None
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {url}: {r.status_code} {r.text[:500]}")
        if not r.content:
            return {}
        try:
            return r.json()
        except ValueError:
            return {}

    def wait_service(self, service, path, timeout=120, bed=None):
        deadline = time.time() + timeout
        while True:
            if bed:
                bed.check_alive()
            try:
                self.call(service, "GET", path, retries=1)
                return
            except Exception as e:
                if time.time() > deadline:
                    raise RuntimeError(f"{service} does not answer {path}: {e}")
                time.sleep(0.5)

    def find(self, service, path, key, name):
        for item in self.call(service, "GET", f"{path}?name={name}")[key]:
            if item["name"] == name:
                return item
        return None

    def ensure(self, service, path, single, name, body):
        found = self.find(service, path, single + "s", name)
        if found:
            return found
        return self.call(service, "POST", path, {single: body})[single]


def main():
    if len(sys.argv) < 3:
        print("usage: bed.py up|down|status|env STATE_DIR | stop-service|start-service STATE_DIR NAME | add-computes STATE_DIR N", file=sys.stderr)
        return 2
    cmd, root = sys.argv[1], sys.argv[2]
    bed = Bed(root)
    if cmd == "up":
        try:
            bed.up()
        except Exception as e:
            log(f"FAILED: {e}")
            bed.down()
            return 1
        return 0
    if cmd == "down":
        bed.down()
        return 0
    if cmd == "status":
        return 0 if bed.status() else 1
    if cmd == "stop-service" and len(sys.argv) == 4:
        bed.stop_service(sys.argv[3])
        return 0
    if cmd == "start-service" and len(sys.argv) == 4:
        bed.start_service(sys.argv[3])
        return 0
    if cmd == "add-computes" and len(sys.argv) == 4:
        bed.add_computes(int(sys.argv[3]))
        return 0
    if cmd == "env":
        try:
            sys.stdout.write(open(bed.p("env")).read())
        except OSError:
            print("the bed has not been started (cargo xtask openstack up)", file=sys.stderr)
            return 1
        return 0
    print(f"unknown command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
