//! A pod's volumes as the kubelet mounts them, rendered into files (pure): ConfigMap, Secret,
//! downward API and projected volumes (the service account's token, `ca.crt` and `namespace`
//! among them) become read-only volumes of their files, `emptyDir` an empty writable one. Each
//! volume is one set of files, seen at every `mountPath` (or `subPath` of it) its containers
//! give (the pod's containers share one mount namespace here, so a path is mounted once, for
//! the first container that names it). A `hostPath` volume binds the node's own directory or
//! file ([`prepare_host_paths`] checks its type first). Other volume types (claims) are not
//! rendered: containers see the host's files there. `subPathExpr` is not supported and is
//! reported.

use std::collections::BTreeMap;
use std::path::PathBuf;

use frontdoor_netns::{Volume, VolumeFile, VolumeMount as Mount};
use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Pod, Secret, Volume as PodVolume, VolumeMount};

/// `defaultMode` when a volume gives none (0644).
const DEFAULT_MODE: i32 = 0o644;

/// The objects a pod's volumes name, fetched by the caller: ConfigMaps and Secrets of the pod's
/// namespace by name (absent: not found), and the token for `serviceAccountToken` sources.
#[derive(Debug, Default)]
pub struct Sources {
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub secrets: BTreeMap<String, Secret>,
    pub token: Option<String>,
}

/// The ConfigMaps and Secrets a pod's mounted volumes name (to fetch before [`render`]).
pub fn referenced(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let (mut config_maps, mut secrets) = (Vec::new(), Vec::new());
    for (volume, _) in mounted(pod) {
        if let Some(source) = &volume.config_map {
            config_maps.push(source.name.clone());
        }
        if let Some(source) = &volume.secret {
            secrets.extend(source.secret_name.clone());
        }
        for projection in volume.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(source) = &projection.config_map {
                config_maps.push(source.name.clone());
            }
            if let Some(source) = &projection.secret {
                secrets.push(source.name.clone());
            }
        }
    }
    config_maps.sort();
    config_maps.dedup();
    secrets.sort();
    secrets.dedup();
    (config_maps, secrets)
}

/// The volumes to mount in the pod, or why one cannot be (the kubelet's `FailedMount` message).
pub fn render(pod: &Pod, sources: &Sources) -> Result<Vec<Volume>, String> {
    render_each(pod, sources).into_iter().collect()
}

/// Each volume to mount in the pod, or why it cannot be, one by one (a running pod's volumes
/// are refreshed each on its own: one whose ConfigMap went keeps its files, the others follow).
pub fn render_each(pod: &Pod, sources: &Sources) -> Vec<Result<Volume, String>> {
    mounted(pod).into_iter().filter_map(|(volume, mounts)| render_one(pod, volume, &mounts, sources)).collect()
}

/// One volume with its mounts; `None` for a type that is not rendered.
fn render_one(
    pod: &Pod,
    volume: &PodVolume,
    mounts: &[&VolumeMount],
    sources: &Sources,
) -> Option<Result<Volume, String>> {
    let failed = |why: String| format!("MountVolume.SetUp failed for volume \"{}\" : {why}", volume.name);
    if let Some(mount) = mounts.iter().find(|m| m.sub_path_expr.as_deref().is_some_and(|p| !p.is_empty())) {
        return Some(Err(failed(format!("subPathExpr mounts are not supported (at {})", mount.mount_path))));
    }
    let host_path = volume.host_path.as_ref().map(|source| PathBuf::from(&source.path));
    let files = match files_of(pod, volume, sources) {
        Err(why) => return Some(Err(failed(why))),
        Ok(Some(files)) => files,
        Ok(None) if volume.empty_dir.is_some() || host_path.is_some() => Vec::new(),
        Ok(None) => return None,
    };
    let size_limit = volume.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref()).and_then(|q| bytes(&q.0));
    let mounts = mounts
        .iter()
        .map(|mount| Mount {
            path: PathBuf::from(&mount.mount_path),
            sub_path: mount.sub_path.as_deref().filter(|p| !p.is_empty()).map(PathBuf::from),
            // Kubernetes mounts ConfigMap, Secret, downward API and projected volumes read-only.
            read_only: mount.read_only == Some(true) || (volume.empty_dir.is_none() && host_path.is_none()),
        })
        .collect();
    Some(Ok(Volume { name: volume.name.clone(), files, size_limit, mounts, host_path }))
}

/// Checks (or makes) what the pod's `hostPath` volumes name on this node, as the kubelet does
/// before it mounts them: `DirectoryOrCreate` and `FileOrCreate` are made (0755, 0644; a file's
/// directory must be there), `Directory`, `File`, `Socket`, `CharDevice` and `BlockDevice` must
/// be of that kind, and no type (or an empty one) takes whatever is there, a directory made
/// where nothing is.
/// `Err` is the kubelet's `FailedMount` message. Touches the node's filesystem.
pub fn prepare_host_paths(pod: &Pod) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
    for (volume, _) in mounted(pod) {
        let Some(source) = &volume.host_path else { continue };
        let failed = |why: String| format!("MountVolume.SetUp failed for volume \"{}\" : {why}", volume.name);
        let path = std::path::Path::new(&source.path);
        let kind = source.type_.as_deref().unwrap_or_default();
        let found = std::fs::metadata(path).ok().map(|meta| meta.file_type());
        let check_failed = |what: &str| failed(format!("hostPath type check failed: {} is not a {what}", source.path));
        match (kind, found) {
            // No type and nothing there: the kubelet binds what the runtime makes, a directory.
            ("DirectoryOrCreate" | "", None) => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(path)
                .map_err(|error| failed(format!("making directory {}: {error}", source.path)))?,
            ("FileOrCreate", None) => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(path)
                    .map_err(|error| failed(format!("making file {}: {error}", source.path)))?;
            }
            ("Directory" | "DirectoryOrCreate", found) if !found.is_some_and(|kind| kind.is_dir()) => {
                return Err(check_failed("directory"))
            }
            ("File" | "FileOrCreate", found) if !found.is_some_and(|kind| kind.is_file()) => {
                return Err(check_failed("file"))
            }
            ("Socket", found) if !found.is_some_and(|kind| kind.is_socket()) => {
                return Err(check_failed("socket file"))
            }
            ("CharDevice", found) if !found.is_some_and(|kind| kind.is_char_device()) => {
                return Err(check_failed("character device"))
            }
            ("BlockDevice", found) if !found.is_some_and(|kind| kind.is_block_device()) => {
                return Err(check_failed("block device"))
            }
            (
                "" | "Directory" | "DirectoryOrCreate" | "File" | "FileOrCreate" | "Socket" | "CharDevice"
                | "BlockDevice",
                _,
            ) => {}
            (other, _) => return Err(failed(format!("invalid HostPathType {other}"))),
        }
    }
    Ok(())
}

/// The volumes the containers mount, in the order of their first mount (init containers
/// first), each with its mounts: each mount path once, for the first container that names it.
fn mounted(pod: &Pod) -> Vec<(&PodVolume, Vec<&VolumeMount>)> {
    let Some(spec) = pod.spec.as_ref() else { return Vec::new() };
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    let containers = spec.init_containers.iter().flatten().chain(spec.containers.iter());
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<(&PodVolume, Vec<&VolumeMount>)> = Vec::new();
    for mount in containers.flat_map(|c| c.volume_mounts.iter().flatten()) {
        let Some(volume) = volumes.iter().find(|v| v.name == mount.name) else { continue };
        if !seen.insert(mount.mount_path.as_str()) {
            continue;
        }
        match out.iter_mut().find(|(known, _)| known.name == volume.name) {
            Some((_, mounts)) => mounts.push(mount),
            None => out.push((volume, vec![mount])),
        }
    }
    out
}

/// The files of a volume the node renders; `None` for a type it does not.
fn files_of(pod: &Pod, volume: &PodVolume, sources: &Sources) -> Result<Option<Vec<VolumeFile>>, String> {
    let mut files = Vec::new();
    if let Some(source) = &volume.config_map {
        let mode = source.default_mode.unwrap_or(DEFAULT_MODE);
        files.extend(config_map_files(sources, &source.name, source.items.as_deref(), source.optional, mode)?);
    } else if let Some(source) = &volume.secret {
        let name = source.secret_name.as_deref().unwrap_or_default();
        let mode = source.default_mode.unwrap_or(DEFAULT_MODE);
        files.extend(secret_files(sources, name, source.items.as_deref(), source.optional, mode)?);
    } else if let Some(source) = &volume.downward_api {
        let mode = source.default_mode.unwrap_or(DEFAULT_MODE);
        files.extend(downward(pod, source.items.as_deref().unwrap_or_default(), mode)?);
    } else if let Some(projected) = &volume.projected {
        let mode = projected.default_mode.unwrap_or(DEFAULT_MODE);
        for projection in projected.sources.iter().flatten() {
            if let Some(source) = &projection.config_map {
                files.extend(config_map_files(sources, &source.name, source.items.as_deref(), source.optional, mode)?);
            }
            if let Some(source) = &projection.secret {
                files.extend(secret_files(sources, &source.name, source.items.as_deref(), source.optional, mode)?);
            }
            if let Some(source) = &projection.downward_api {
                files.extend(downward(pod, source.items.as_deref().unwrap_or_default(), mode)?);
            }
            if let Some(source) = &projection.service_account_token {
                let token = sources.token.as_deref().ok_or("no service account token on this node")?;
                files.push(file(&source.path, token.as_bytes().to_vec(), mode));
            }
        }
    } else {
        return Ok(None);
    }
    Ok(Some(files))
}

/// The files of a ConfigMap, as a `configMap` volume or a projected volume's source holds them.
fn config_map_files(
    sources: &Sources,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    mode: i32,
) -> Result<Vec<VolumeFile>, String> {
    let entries = sources.config_maps.get(name).map(|map| {
        let text = map.data.iter().flatten().map(|(k, v)| (k.clone(), v.as_bytes().to_vec()));
        let binary = map.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()));
        text.chain(binary).collect()
    });
    select("configmap", name, entries, items, optional == Some(true), mode)
}

/// The files of a Secret, as a `secret` volume or a projected volume's source holds them.
fn secret_files(
    sources: &Sources,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    mode: i32,
) -> Result<Vec<VolumeFile>, String> {
    let entries = sources.secrets.get(name).map(|secret| {
        let data = secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()));
        let text = secret.string_data.iter().flatten().map(|(k, v)| (k.clone(), v.as_bytes().to_vec()));
        data.chain(text).collect()
    });
    select("secret", name, entries, items, optional == Some(true), mode)
}

/// Every key of the `kind` object `name` (its `entries`, `None` when it is not there) as a file
/// of its name, or only the listed items at their paths. A missing object or key is an error
/// unless the source is optional.
fn select(
    kind: &str,
    name: &str,
    entries: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    optional: bool,
    mode: i32,
) -> Result<Vec<VolumeFile>, String> {
    let entries = match entries {
        Some(entries) => entries,
        None if optional => BTreeMap::new(),
        None => return Err(format!("{kind} \"{name}\" not found")),
    };
    let Some(items) = items.filter(|items| !items.is_empty()) else {
        return Ok(entries.into_iter().map(|(key, contents)| file(&key, contents, mode)).collect());
    };
    let mut files = Vec::new();
    for item in items {
        match entries.get(&item.key) {
            Some(contents) => files.push(file(&item.path, contents.clone(), item.mode.unwrap_or(mode))),
            None if optional => {}
            None => return Err(format!("{kind} references non-existent config key: {}", item.key)),
        }
    }
    Ok(files)
}

fn downward(
    pod: &Pod,
    items: &[k8s_openapi::api::core::v1::DownwardAPIVolumeFile],
    mode: i32,
) -> Result<Vec<VolumeFile>, String> {
    let mut files = Vec::new();
    for item in items {
        let Some(field) = &item.field_ref else { continue };
        let value = crate::env::field_value(pod, &field.field_path)
            .ok_or_else(|| format!("unsupported fieldPath {:?}", field.field_path))?;
        files.push(file(&item.path, value.into_bytes(), item.mode.unwrap_or(mode)));
    }
    Ok(files)
}

fn file(path: &str, contents: Vec<u8>, mode: i32) -> VolumeFile {
    VolumeFile { path: PathBuf::from(path), contents, mode: u32::try_from(mode & 0o777).unwrap_or(0o644) }
}

/// A quantity in bytes (`512Mi`, `1G`, `1000`); `None` if it is not one.
fn bytes(quantity: &str) -> Option<u64> {
    let split = quantity.find(|c: char| !c.is_ascii_digit()).unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" => 1000,
        "M" => 1000u64.pow(2),
        "G" => 1000u64.pow(3),
        "T" => 1000u64.pow(4),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "web-0", "namespace": "shop", "uid": "u1",
                                                   "labels": {"app": "web"}}, "spec": spec}))
        .unwrap()
    }

    fn sources() -> Sources {
        let config_maps = [
            ("kube-root-ca.crt", json!({"data": {"ca.crt": "PEM"}})),
            (
                "site",
                json!({"data": {"index.html": "<h1>hi</h1>", "nginx.conf": "events {}"},
                            "binaryData": {"logo.png": "AAEC"}}),
            ),
        ];
        let config_maps = config_maps
            .into_iter()
            .map(|(name, body)| (name.to_string(), serde_json::from_value::<ConfigMap>(body).unwrap()))
            .collect();
        let secret: Secret =
            serde_json::from_value(json!({"data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}})).unwrap();
        Sources { config_maps, secrets: [("tls".to_string(), secret)].into(), token: Some("t0ken".into()) }
    }

    /// A file as (path, contents, mode).
    type Seen = (String, String, u32);
    /// A mount as (mount path, read-only, the volume's files).
    type Mounted = (String, bool, Vec<Seen>);

    /// Each mount's path, whether it is read-only, and its volume's files.
    fn rendered(pod: &Pod) -> Result<Vec<Mounted>, String> {
        Ok(render(pod, &sources())?
            .into_iter()
            .flat_map(|v| {
                let files: Vec<Seen> = v
                    .files
                    .iter()
                    .map(|f| (f.path.display().to_string(), String::from_utf8_lossy(&f.contents).into_owned(), f.mode))
                    .collect();
                v.mounts.into_iter().map(move |m| (m.path.display().to_string(), m.read_only, files.clone()))
            })
            .collect())
    }

    fn with_volume(volume: serde_json::Value, mount: serde_json::Value) -> Pod {
        let mut mount = mount;
        mount["name"] = json!("v");
        let mut volume = volume;
        volume["name"] = json!("v");
        pod(json!({"containers": [{"name": "c", "volumeMounts": [mount]}], "volumes": [volume]}))
    }

    #[test]
    fn each_volume_type_renders_its_files() {
        let files = |list: &[(&str, &str, u32)]| -> Vec<Seen> {
            list.iter().map(|(p, c, m)| (p.to_string(), c.to_string(), *m)).collect()
        };
        let cases: Vec<(serde_json::Value, serde_json::Value, Vec<Mounted>)> = vec![
            (
                json!({"configMap": {"name": "site"}}),
                json!({"mountPath": "/etc/site"}),
                vec![(
                    "/etc/site".into(),
                    true,
                    files(&[
                        ("index.html", "<h1>hi</h1>", 0o644),
                        ("logo.png", "\0\u{1}\u{2}", 0o644),
                        ("nginx.conf", "events {}", 0o644),
                    ]),
                )],
            ),
            (
                json!({"configMap": {"name": "site", "defaultMode": 0o600, "items": [{"key": "nginx.conf", "path": "conf/nginx.conf"}, {"key": "index.html", "path": "i", "mode": 0o444}]}}),
                json!({"mountPath": "/etc/nginx"}),
                vec![(
                    "/etc/nginx".into(),
                    true,
                    files(&[("conf/nginx.conf", "events {}", 0o600), ("i", "<h1>hi</h1>", 0o444)]),
                )],
            ),
            (
                json!({"secret": {"secretName": "tls"}}),
                json!({"mountPath": "/tls"}),
                vec![("/tls".into(), true, files(&[("tls.crt", "cert", 0o644), ("tls.key", "key", 0o644)]))],
            ),
            (
                json!({"downwardAPI": {"items": [{"path": "labels/app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
                                                  {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}),
                json!({"mountPath": "/info"}),
                vec![("/info".into(), true, files(&[("labels/app", "web", 0o644), ("name", "web-0", 0o644)]))],
            ),
            (
                json!({"emptyDir": {"sizeLimit": "64Mi"}}),
                json!({"mountPath": "/scratch"}),
                vec![("/scratch".into(), false, vec![])],
            ),
            (
                json!({"hostPath": {"path": "/data"}}),
                json!({"mountPath": "/data"}),
                vec![("/data".into(), false, vec![])],
            ),
            (
                json!({"configMap": {"name": "missing", "optional": true}}),
                json!({"mountPath": "/opt"}),
                vec![("/opt".into(), true, vec![])],
            ),
        ];
        for (volume, mount, expected) in cases {
            let pod = with_volume(volume.clone(), mount);
            assert_eq!(rendered(&pod).unwrap(), expected, "{volume}");
        }
        let emptied =
            render(&with_volume(json!({"emptyDir": {"sizeLimit": "64Mi"}}), json!({"mountPath": "/s"})), &sources());
        assert_eq!(emptied.unwrap()[0].size_limit, Some(64 << 20));
    }

    #[test]
    fn the_service_account_volume_holds_token_ca_and_namespace() {
        let volume = json!({"projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ]}});
        let pod = with_volume(
            volume,
            json!({"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}),
        );
        let expected = vec![(
            "/var/run/secrets/kubernetes.io/serviceaccount".to_string(),
            true,
            vec![
                ("token".to_string(), "t0ken".to_string(), 0o644),
                ("ca.crt".to_string(), "PEM".to_string(), 0o644),
                ("namespace".to_string(), "shop".to_string(), 0o644),
            ],
        )];
        assert_eq!(rendered(&pod).unwrap(), expected);
        assert_eq!(referenced(&pod), (vec!["kube-root-ca.crt".to_string()], vec![]));
    }

    #[test]
    fn what_cannot_be_mounted_says_why() {
        let cases = [
            (json!({"configMap": {"name": "missing"}}), json!({"mountPath": "/x"}), "configmap \"missing\" not found"),
            (json!({"secret": {"secretName": "gone"}}), json!({"mountPath": "/x"}), "secret \"gone\" not found"),
            (
                json!({"configMap": {"name": "site", "items": [{"key": "nope", "path": "n"}]}}),
                json!({"mountPath": "/x"}),
                "configmap references non-existent config key: nope",
            ),
            (
                json!({"configMap": {"name": "site"}}),
                json!({"mountPath": "/x/f", "subPathExpr": "$(POD_NAME)"}),
                "subPathExpr mounts are not supported",
            ),
        ];
        for (volume, mount, why) in cases {
            let error = rendered(&with_volume(volume.clone(), mount)).unwrap_err();
            assert!(error.starts_with("MountVolume.SetUp failed for volume \"v\" : "), "{error}");
            assert!(error.contains(why), "{volume}: {error}");
        }
    }

    #[test]
    fn a_path_two_containers_mount_is_mounted_once_for_the_first() {
        let pod = pod(json!({
            "initContainers": [{"name": "i", "volumeMounts": [{"name": "a", "mountPath": "/shared"}]}],
            "containers": [{"name": "c", "volumeMounts": [{"name": "b", "mountPath": "/shared"}, {"name": "a", "mountPath": "/other"}]}],
            "volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "configMap": {"name": "site"}}]
        }));
        let paths: Vec<(String, bool)> = rendered(&pod).unwrap().into_iter().map(|(p, ro, _)| (p, ro)).collect();
        assert_eq!(paths, vec![("/shared".to_string(), false), ("/other".to_string(), false)]);
    }

    /// A mount as (path, subPath, read-only).
    type MountShape = (String, Option<String>, bool);

    #[test]
    fn a_volume_is_one_set_of_files_at_each_of_its_mounts_and_sub_paths() {
        let pod = pod(json!({
            "initContainers": [{"name": "i", "volumeMounts": [{"name": "scratch", "mountPath": "/work"}]}],
            "containers": [
                {"name": "web", "volumeMounts": [
                    {"name": "site", "mountPath": "/etc/nginx/nginx.conf", "subPath": "nginx.conf"},
                    {"name": "scratch", "mountPath": "/usr/share/nginx/html", "readOnly": true},
                    {"name": "site", "mountPath": "/srv", "subPath": ""}
                ]},
                {"name": "writer", "volumeMounts": [{"name": "scratch", "mountPath": "/pod-data", "subPath": "out"}]}
            ],
            "volumes": [{"name": "site", "configMap": {"name": "site"}}, {"name": "scratch", "emptyDir": {}}]
        }));
        let volumes = render(&pod, &sources()).unwrap();
        let shape: Vec<(&str, usize, Vec<MountShape>)> = volumes
            .iter()
            .map(|v| {
                let mounts = v
                    .mounts
                    .iter()
                    .map(|m| {
                        let sub_path = m.sub_path.as_ref().map(|p| p.display().to_string());
                        (m.path.display().to_string(), sub_path, m.read_only)
                    })
                    .collect();
                (v.name.as_str(), v.files.len(), mounts)
            })
            .collect();
        let mount =
            |path: &str, sub_path: Option<&str>, read_only| (path.to_string(), sub_path.map(Into::into), read_only);
        assert_eq!(
            shape,
            vec![
                (
                    "scratch",
                    0,
                    vec![
                        mount("/work", None, false),
                        mount("/usr/share/nginx/html", None, true),
                        mount("/pod-data", Some("out"), false)
                    ]
                ),
                ("site", 3, vec![mount("/etc/nginx/nginx.conf", Some("nginx.conf"), true), mount("/srv", None, true)]),
            ]
        );
    }

    #[test]
    fn host_paths_are_checked_or_made_as_the_kubelet_does() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name).display().to_string();
        std::fs::write(dir.path().join("a-file"), "x").unwrap();
        std::fs::create_dir(dir.path().join("a-dir")).unwrap();
        let with = |path: String, kind: &str| {
            let mut source = json!({"path": path});
            if !kind.is_empty() {
                source["type"] = json!(kind);
            }
            with_volume(json!({"hostPath": source}), json!({"mountPath": "/in-pod"}))
        };
        let cases = [
            (at("made/deep"), "DirectoryOrCreate", Ok(())),
            (at("a-dir"), "Directory", Ok(())),
            (
                at("missing"),
                "Directory",
                Err(format!("hostPath type check failed: {} is not a directory", at("missing"))),
            ),
            (
                at("a-file"),
                "Directory",
                Err(format!("hostPath type check failed: {} is not a directory", at("a-file"))),
            ),
            (
                at("a-file"),
                "DirectoryOrCreate",
                Err(format!("hostPath type check failed: {} is not a directory", at("a-file"))),
            ),
            (at("new-file"), "FileOrCreate", Ok(())),
            (at("a-file"), "File", Ok(())),
            (at("a-dir"), "File", Err(format!("hostPath type check failed: {} is not a file", at("a-dir")))),
            (at("a-file"), "Socket", Err(format!("hostPath type check failed: {} is not a socket file", at("a-file")))),
            (
                at("a-file"),
                "BlockDevice",
                Err(format!("hostPath type check failed: {} is not a block device", at("a-file"))),
            ),
            (at("a-file"), "", Ok(())),
            (at("untyped"), "", Ok(())),
            (at("a-dir"), "Pipe", Err("invalid HostPathType Pipe".to_string())),
        ];
        for (path, kind, expected) in cases {
            let expected = expected.map_err(|why| format!("MountVolume.SetUp failed for volume \"v\" : {why}"));
            assert_eq!(prepare_host_paths(&with(path.clone(), kind)), expected, "{path} {kind}");
        }
        assert!(dir.path().join("made/deep").is_dir() && dir.path().join("untyped").is_dir());
        assert!(dir.path().join("new-file").is_file());
        // Rendered: the node's path, writable unless the mount says otherwise, no files.
        let pod =
            with_volume(json!({"hostPath": {"path": at("a-dir")}}), json!({"mountPath": "/logs", "readOnly": true}));
        let volumes = render(&pod, &sources()).unwrap();
        assert_eq!(volumes[0].host_path.as_deref(), Some(dir.path().join("a-dir").as_path()));
        assert_eq!((volumes[0].files.len(), volumes[0].mounts[0].read_only), (0, true));
        let pod = with_volume(json!({"hostPath": {"path": at("a-dir")}}), json!({"mountPath": "/logs"}));
        assert!(!render(&pod, &sources()).unwrap()[0].mounts[0].read_only);
    }

    #[test]
    fn quantities_in_bytes() {
        for (text, expected) in [
            ("1000", Some(1000)),
            ("1k", Some(1000)),
            ("64Mi", Some(64 << 20)),
            ("2Gi", Some(2 << 30)),
            ("1.5Gi", None),
            ("x", None),
        ] {
            assert_eq!(bytes(text), expected, "{text}");
        }
    }
}
