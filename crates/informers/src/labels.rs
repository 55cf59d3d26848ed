//! Well-known label and annotation keys, with upstream's values.

/// The Service an EndpointSlice belongs to (`discovery.LabelServiceName`).
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Which controller manages an EndpointSlice (`discovery.LabelManagedBy`).
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// Present (empty value) on the slices and Endpoints of a Service without a cluster IP.
pub const HEADLESS: &str = "service.kubernetes.io/headless";
/// A Service that another proxy implementation serves (kube-proxy skips it).
pub const SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// The node's hostname label.
pub const HOSTNAME: &str = "kubernetes.io/hostname";
/// The Ingress class of legacy Ingresses.
pub const INGRESS_CLASS: &str = "kubernetes.io/ingress.class";
/// Marks the default IngressClass.
pub const DEFAULT_INGRESS_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";
