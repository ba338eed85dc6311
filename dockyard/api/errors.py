"""Every error the AWS JSON protocol can answer with, declared once.

Handlers raise these; the protocol layer turns them into
``{"__type": NAME, "message": ...}`` with the HTTP status from this table.
"""

from __future__ import annotations

from typing import ClassVar


class AwsError(Exception):
    """An error the client caused or that AWS itself would report."""

    code: ClassVar[str] = "ServiceException"
    status: ClassVar[int] = 400

    def __init__(self, message: str = "", **members: str | int) -> None:
        """``members``: the extra members some error shapes declare (ECR's
        InvalidLayerPartException carries ``lastValidByteReceived``)."""
        super().__init__(message)
        self.message = message
        self.members = members

    def body(self) -> dict[str, str | int]:
        return {**self.members, "__type": self.code, "message": self.message}


_TABLE: dict[str, type[AwsError]] = {}


def _declare(code: str, status: int, doc: str) -> type[AwsError]:
    cls = type(code, (AwsError,), {"code": code, "status": status, "__doc__": doc})
    _TABLE[code] = cls
    return cls


def error_class(code: str) -> type[AwsError]:
    return _TABLE[code]


# Protocol and authentication (common to every AWS JSON service).
SerializationException = _declare(
    "SerializationException", 400, "The body is not JSON, or a value has the wrong type."
)
UnknownOperationException = _declare(
    "UnknownOperationException", 400, "X-Amz-Target names no operation of the service."
)
MissingAuthenticationTokenException = _declare(
    "MissingAuthenticationTokenException", 403, "The request carries no SigV4 signature."
)
IncompleteSignatureException = _declare(
    "IncompleteSignatureException", 403, "The Authorization header is malformed."
)
InvalidSignatureException = _declare(
    "InvalidSignatureException", 403, "The signature does not match, or it is too old."
)
UnrecognizedClientException = _declare(
    "UnrecognizedClientException", 403, "The access key id is not known."
)
AccessDeniedException = _declare(
    "AccessDeniedException", 403, "The identity is not allowed to do this."
)
ValidationException = _declare("ValidationException", 400, "Generic input validation failure.")

# ECS.
ServerException = _declare("ServerException", 500, "A real fault inside Dockyard.")
ClientException = _declare("ClientException", 400, "The request is wrong as a whole.")
InvalidParameterException = _declare(
    "InvalidParameterException",
    400,
    "A parameter is missing, has a wrong value or is out of range.",
)
ClusterNotFoundException = _declare("ClusterNotFoundException", 400, "No such cluster.")
ClusterContainsContainerInstancesException = _declare(
    "ClusterContainsContainerInstancesException", 400, "Deregister its instances first."
)
ClusterContainsServicesException = _declare(
    "ClusterContainsServicesException", 400, "Delete its services first."
)
ClusterContainsTasksException = _declare(
    "ClusterContainsTasksException", 400, "Stop its tasks first."
)
ResourceNotFoundException = _declare("ResourceNotFoundException", 400, "No such resource.")
ResourceInUseException = _declare("ResourceInUseException", 400, "The resource is in use.")
UpdateInProgressException = _declare(
    "UpdateInProgressException", 400, "Another update of this resource is still running."
)
TargetNotFoundException = _declare(
    "TargetNotFoundException", 400, "An attribute's target does not exist."
)
AttributeLimitExceededException = _declare(
    "AttributeLimitExceededException", 400, "More than 10 custom attributes on a resource."
)
LimitExceededException = _declare("LimitExceededException", 400, "A quota was reached.")
ServiceNotFoundException = _declare("ServiceNotFoundException", 400, "No such service.")
ServiceNotActiveException = _declare("ServiceNotActiveException", 400, "The service is not ACTIVE.")
PlatformUnknownException = _declare("PlatformUnknownException", 400, "Unknown platform.")
UnsupportedFeatureException = _declare(
    "UnsupportedFeatureException", 400, "The feature is not available here."
)

# ECR.
RepositoryNotFoundException = _declare("RepositoryNotFoundException", 400, "No such repository.")
RepositoryAlreadyExistsException = _declare(
    "RepositoryAlreadyExistsException", 400, "The repository name is taken."
)
RepositoryNotEmptyException = _declare(
    "RepositoryNotEmptyException", 400, "The repository holds images; use force."
)
RepositoryPolicyNotFoundException = _declare(
    "RepositoryPolicyNotFoundException", 400, "The repository has no policy."
)
ImageNotFoundException = _declare("ImageNotFoundException", 400, "No such image.")
ImageAlreadyExistsException = _declare(
    "ImageAlreadyExistsException", 400, "The image is already pushed with this tag."
)
ImageTagAlreadyExistsException = _declare(
    "ImageTagAlreadyExistsException", 400, "The tag is immutable and already in use."
)
ImageDigestDoesNotMatchException = _declare(
    "ImageDigestDoesNotMatchException", 400, "The manifest does not match the given digest."
)
ReferencedImagesNotFoundException = _declare(
    "ReferencedImagesNotFoundException", 400, "An index refers to images not in the repository."
)
InvalidTagParameterException = _declare(
    "InvalidTagParameterException", 400, "A tag key or value is invalid."
)
TooManyTagsException = _declare("TooManyTagsException", 400, "More than 50 tags.")
LayersNotFoundException = _declare("LayersNotFoundException", 400, "A layer is not there.")
LayerAlreadyExistsException = _declare(
    "LayerAlreadyExistsException", 400, "The layer is already in the repository."
)
LayerInaccessibleException = _declare(
    "LayerInaccessibleException", 400, "The layer cannot be read."
)
LayerPartTooSmallException = _declare(
    "LayerPartTooSmallException", 400, "A layer part is smaller than allowed."
)
InvalidLayerException = _declare(
    "InvalidLayerException", 400, "The uploaded layer does not match its digest."
)
InvalidLayerPartException = _declare(
    "InvalidLayerPartException", 400, "A layer part is out of order or malformed."
)
UploadNotFoundException = _declare("UploadNotFoundException", 400, "No such upload.")
EmptyUploadException = _declare("EmptyUploadException", 400, "The upload has no data.")
LifecyclePolicyNotFoundException = _declare(
    "LifecyclePolicyNotFoundException", 400, "The repository has no lifecycle policy."
)
LifecyclePolicyPreviewNotFoundException = _declare(
    "LifecyclePolicyPreviewNotFoundException", 400, "No lifecycle policy preview was started."
)
LifecyclePolicyPreviewInProgressException = _declare(
    "LifecyclePolicyPreviewInProgressException", 400, "A lifecycle preview is still running."
)
